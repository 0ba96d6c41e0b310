"""The session settings of the connections that apply and rebuild projections.

Each is set for one reason, said beside it; runners, rebuilds and the statistics keeper
connect with them (``runner`` re-exports both names).
"""

# JIT compiling each handler statement costs more (a second and more) than running it.
SERVER_SETTINGS = {"application_name": "crashlog-projections", "jit": "off",
                   # A generic plan of a span query may scan the whole log: plan each span.
                   "plan_cache_mode": "force_custom_plan",
                   # A batch's sorts and hashes (round recomputations) fit in memory.
                   "work_mem": "64MB",
                   # The planner overestimates a span's rows (a row comparison) and would
                   # start parallel workers, ~20 ms each time, to scan a few thousand events.
                   "max_parallel_workers_per_gather": "0",
                   # A pass and its checkpoint commit together or not at all; a pass lost in
                   # a server crash is applied again from the log, so no need to wait for
                   # its commit to reach the disk.
                   "synchronous_commit": "off"}
# A rebuild also sorts whole tables to build their indexes.
REBUILD_SETTINGS = {**SERVER_SETTINGS, "application_name": "crashlog-rebuild",
                    "maintenance_work_mem": "256MB"}
