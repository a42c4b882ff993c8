"""Sign to text: the spelling decoder, `transcribe` of videos, frames and cameras, and test clips built
from real photos."""
