"""Values and functions that tests of more than one tier share, one module per code module.

Each lives here once; the tiers import them (``from helpers.spool import make_rows``).
"""
