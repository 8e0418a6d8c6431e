from virnucpro.cli import entry

entry()
