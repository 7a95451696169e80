"""What every component shares: the client, keys, schemas, queries, reads, scripts, index
checks, errors and configuration. Nothing here imports a component."""
