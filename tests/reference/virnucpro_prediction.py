# VirNucPro's prediction.py, only process_record, copied verbatim (CRLF line ends as in the original) from
# https://github.com/Li-Jing-1997/VirNucPro, commit 0f93f2755a7ea1acd3ff1bcf182892f960ef3326, file prediction.py.
# Copyright (c) 2024 Jing Li, MIT License: see LICENSE beside this file.
# The import line below is the only line that is not the original's: prediction.py has `from units import *`,
# and process_record needs only identify_seq, which units.py (vendored here as virnucpro_units.py) defines.
from virnucpro_units import identify_seq

def process_record(record):
    sequence = str(record.seq).upper()
    seqid = record.id
    result = identify_seq(seqid, sequence)
    return result
