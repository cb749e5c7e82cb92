"""The 10DLC rows a batch names (`Rows`): read with one statement per table; those its events
will create (`Plan`) are inserted together beforehand, out of sight until the event that
creates them runs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table

from hookyard.domain.batch import Batch, Key, Row
from hookyard.domain.tendlc.payload import TcrEvent, VettingKey


class Rows:
    """One table's rows a batch names, by key, as the events applied so far left them. The
    rows the batch inserted ahead (`ahead`) stay out of sight until the event that creates
    them runs, so an earlier event sees the table as it was."""

    __slots__ = ("ahead", "batch", "column", "seen", "table")

    def __init__(self, batch: Batch, table: Table, column: Key) -> None:
        self.batch = batch
        self.table = table
        self.column = column
        self.seen: dict[Any, Row] = {}
        self.ahead: dict[Any, Row] = {}

    def read(
        self, keys: Iterable[Any], new: Mapping[Any, Row], *, locked: Iterable[Any] = ()
    ) -> set[Any]:
        """Read the rows of `keys` (those of `locked` keys locked), then insert the missing
        ones `new` has values for, in one statement (`ahead`); the keys inserted."""
        lock = set(locked)
        wanted = set(keys)
        self.seen |= self.batch.rows(self.table, self.column, wanted & lock, lock=True)
        self.seen |= self.batch.rows(self.table, self.column, wanted - lock)
        missing = {key: values for key, values in new.items() if key not in self.seen}
        if missing:
            created = self.batch.create(self.table, self.column, missing)
            self.ahead |= created
            # Keys a concurrent worker inserted first: their rows, committed by now.
            raced = missing.keys() - created.keys()
            self.ahead |= self.batch.rows(self.table, self.column, raced & lock, lock=True)
            self.ahead |= self.batch.rows(self.table, self.column, raced - lock)
            return set(created)
        return set()

    def get(self, key: Any) -> Row | None:
        """The row, if it exists at this point of the batch."""
        return self.seen.get(key)

    def create(self, key: Any, lock: bool, new: Callable[..., Row], *args: Any) -> Row:
        """The row of `key`, created now (with the values `new(*args)`) if it did not exist
        yet (locked with `lock` when read now)."""
        row = self.seen.get(key)
        if row is None:
            row = self.ahead.pop(key, None)
            if row is None:
                # Not foreseen: a concurrent worker's row read back differed from what this
                # batch planned (e.g. its campaign had no brand). Rare: insert it now.
                created = self.batch.create(self.table, self.column, {key: new(*args)})
                row = (
                    created.get(key)
                    or self.batch.rows(self.table, self.column, [key], lock=lock)[key]
                )
            self.seen[key] = row
        return row

    def existing(self, key: Any) -> Row:
        """A row another row refers to (so it exists): in sight from now on."""
        row = self.seen.get(key) or self.ahead.pop(key, None)
        if row is None:  # a concurrent worker's campaign naming a brand not read here: rare
            row = self.batch.rows(self.table, self.column, [key])[key]
        self.seen[key] = row
        return row


@dataclass(slots=True)
class Plan:
    """The rows a batch's events will create, each with the values of the first event that
    creates it (the one that would insert it handling the events one at a time)."""

    brands: dict[str, Row] = field(default_factory=dict)
    locked_brands: set[str] = field(default_factory=set)  # brands of brand events
    campaigns: dict[str, Row] = field(default_factory=dict)
    vettings: dict[VettingKey, Row] = field(default_factory=dict)

    @classmethod
    def of(
        cls, todo: Sequence[TcrEvent], known: Mapping[str, Row], tenant: str | None, now: datetime
    ) -> Plan:
        plan = cls()
        # Whether each campaign exists by then, and its brand: the events change both.
        brand_of: dict[str, str | None] = {key: row["brand_id"] for key, row in known.items()}
        for item in todo:
            brand_id, campaign_id = item.brand_id, item.campaign_id
            if item.names_campaign:
                assert campaign_id is not None
                if campaign_id not in brand_of or (
                    brand_id is not None and brand_of[campaign_id] is None
                ):
                    if brand_id is not None and brand_id not in plan.brands:
                        plan.brands[brand_id] = new_brand(item, tenant, now)
                    if campaign_id not in brand_of:
                        plan.campaigns[campaign_id] = new_campaign(item, campaign_id, now)
                    brand_of[campaign_id] = brand_id
            elif item.names_brand or item.vetting is not None:
                assert brand_id is not None
                if item.names_brand:
                    plan.locked_brands.add(brand_id)
                if brand_id not in plan.brands:
                    plan.brands[brand_id] = new_brand(item, tenant, now)
                if item.vetting is not None and item.vetting not in plan.vettings:
                    plan.vettings[item.vetting] = new_vetting(item, item.vetting, now)
        return plan


def new_brand(item: TcrEvent, tenant: str | None, now: datetime) -> Row:
    return {"brand_id": item.brand_id, "tenant": tenant, "created_at": now} | item.sync(now)


def new_campaign(item: TcrEvent, campaign_id: str, now: datetime) -> Row:
    values = {"campaign_id": campaign_id, "brand_id": item.brand_id, "created_at": now}
    return values | item.sync(now)


def new_carrier(item: TcrEvent, campaign_id: str, mno_id: str, status: str, now: datetime) -> Row:
    """A carrier row as its first event creates it (in memory: see `BatchState.new_carriers`)."""
    values = {"campaign_id": campaign_id, "mno_id": mno_id, "status": status, "created_at": now}
    return values | {"last_event_type": None, "last_event_at": None} | item.sync(now)


def new_vetting(item: TcrEvent, key: VettingKey, now: datetime) -> Row:
    brand_id, kind, vetting_key = key
    values = {"brand_id": brand_id, "kind": kind, "vetting_key": vetting_key, "created_at": now}
    return values | item.sync(now)
