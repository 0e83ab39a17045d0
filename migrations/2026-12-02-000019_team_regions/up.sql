-- The region value (as records carry it in `region`, e.g. 'east') a team covers.
-- The default territory rule maps each such region to its team.
ALTER TABLE teams ADD COLUMN region text;
CREATE INDEX teams_region ON teams (region) WHERE region IS NOT NULL;
