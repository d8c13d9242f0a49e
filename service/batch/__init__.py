"""Redis-queued batch generation: jobs split into chunks, scale-out workers, sharded results.

body (a request body, parsed in short steps) -> jobs (its spec, the public view) -> spec (what a job
is) -> queue (Redis Streams broker and job records) -> worker (takes chunks, render writes shards via
store) -> cleanup (TTL). See docs/batch.md.
"""
