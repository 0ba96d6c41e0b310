-- The indexes of crashlog.rounds, revisited with EXPLAIN on a million rounds
-- (python benchmarks/rounds_indexes.py; figures in benchmarks/README.md).

-- A bot's history in order (bot_statistics, exports by bot): read through a cursor, as
-- crashlog reads it, the rows come in index order with position as the last key: no sort.
DROP INDEX crashlog.rounds_bot_time;
CREATE INDEX rounds_bot_time ON crashlog.rounds (bot_id, occurred_at, position);

-- A strategy's history in order (strategy_statistics): the same, per strategy. Without
-- position the planner read the whole table by time and sorted a strategy's rows.
DROP INDEX crashlog.rounds_strategy_time;
CREATE INDEX rounds_strategy_time ON crashlog.rounds (strategy_name, occurred_at, position);

-- Every round of a period, all bots: rounds arrive roughly in time order, so a BRIN index
-- finds a period as well as a btree did, at almost no cost per insert (the projection
-- writes every round). A whole-table export in time order sorts the table once instead.
DROP INDEX crashlog.rounds_time;
CREATE INDEX rounds_time ON crashlog.rounds USING brin (occurred_at);
