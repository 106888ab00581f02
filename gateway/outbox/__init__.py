"""Delivery of what the engine decided to tell the world: invitation e-mails and webhooks.

Messages are written to the `outbox` table in the same transaction as the change that caused
them; the worker claims due messages (FOR UPDATE SKIP LOCKED on PostgreSQL, the write lock on
SQLite) as threads are free for them, delivers them at least once with a stable Message-ID, each
within a total deadline and webhooks within a share per receiver and organization, and retries
failures with exponential backoff until the last attempt marks them failed. Does not: decide who
gets what.
"""
