-- Version 7: a workspace names the user who may attach it to
-- conversations (besides admins); NULL leaves it to admins.
ALTER TABLE workspaces ADD COLUMN owner_id BLOB;
