-- Users' own projections (crashlog/projections/user.py): what their checkpoint remembers of
-- the declaration they were created from.
--
-- declaration: a checksum of the declared tables, columns and indexes. A runner refuses a
-- declaration that changed without a new version (its tables were created from the old one).
-- tables: the tables the projection owns, so `crashlog project --drop NAME` can remove them
-- without the code that declared them. Both NULL for the built-ins.
ALTER TABLE crashlog.projection_checkpoints
    ADD COLUMN declaration text,
    ADD COLUMN tables      text[];
