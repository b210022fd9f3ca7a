"""The legal REST API: holds and export packages."""
