"""Destinations: verified events POSTed to your own services, signed with Standard Webhooks,
with retries, a circuit breaker per destination and a record of every attempt.

config.py parses `[[destination]]`; tables.py holds their state; fanout.py writes a delivery
per matching destination in the event's ingest transaction; deliver.py sends them from the
workers on the one leased queue; circuit.py is the breaker; manage.py the operator's actions
(pause, resume, replay); changes.py their live changes; retention.py keeps the inbox's purge
from taking an event a delivery still waits for.
"""
