-- Quality flags on round_multipliers, so exports and the quality report can filter on them.
-- round_multipliers v2 fills them (a runner rebuilds the table from the log at start).

-- The OCR confidence a bot gave its reading (RoundSettled.ocr_confidence; null if none).
ALTER TABLE crashlog.round_multiplier_readings ADD COLUMN ocr_confidence double precision;

-- ocr_confidence: the lowest among the round's readings (null when none carried one).
-- quality_flags: any of 'off_grid' (a reading not on the two-decimal grid), 'disagreement'
-- (the readings differ), 'low_ocr_confidence' (a reading's OCR confidence below 0.8).
ALTER TABLE crashlog.round_multipliers
    ADD COLUMN ocr_confidence double precision,
    ADD COLUMN quality_flags  text[] NOT NULL DEFAULT '{}';

-- Exports that leave flagged rounds out, and audits of them: only flagged rows are indexed.
CREATE INDEX round_multipliers_flagged ON crashlog.round_multipliers (platform, game, first_seen_at)
    WHERE quality_flags <> '{}';
