"""The live web page (`keras-sign demo`): `server.py` serves `static/`."""
