"""The run folder station: atomic writes (`atomic`), one writer per folder (`locks`), the folder's files
(`folder`) and the typed record of a run and of a bundle (`record`)."""
