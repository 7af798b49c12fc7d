from shipyard.service import run_migrations_env

run_migrations_env()
