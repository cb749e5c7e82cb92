"""Dashboard pages of destinations: every destination with its health and circuit, one
destination with its deliveries (filtered by status, with a bulk replay of its dead ones), one
delivery with every attempt, and the admins' pause, resume, replay and discard. Each reads and
changes through the API's route functions (`api/destinations.py`), so the tenancy and roles
are the API's: a shared destination is changed by superadmins only.

The lists reload in place on live changes (`data-live`): of events (a new event's
deliveries are made with it), and of `delivery` and `destination` changes once the
deliverer publishes them."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from hookyard.api import destinations as api
from hookyard.api.destinations import DeliveryId, DeliveryReplayFilter, DestinationName
from hookyard.api.params import Cursor
from hookyard.destinations.tables import DeliveryStatus
from hookyard.web.forms import PAGE, FormWord, Word, choice
from hookyard.web.render import back, page
from hookyard.web.session import Csrf, UiScope, call

router = APIRouter()

# The statuses a bulk replay is offered for, on a destination's page filtered on one.
REPLAYABLE = (DeliveryStatus.DEAD, DeliveryStatus.FAILED, DeliveryStatus.DELIVERED)


@router.get("/destinations")
def list_destinations(request: Request, scope: UiScope) -> Response:
    found = call(api.list_destinations, request, scope)
    return page(request, scope, "destinations.html", destinations=found)


@router.get("/destinations/{name}")
def show_destination(
    request: Request,
    scope: UiScope,
    name: DestinationName,
    status: Word = "",
    before_id: Cursor = None,
) -> Response:
    picked = choice(DeliveryStatus, status)
    destination = call(api.show_destination, request, scope, name=name)
    found = call(
        api.destination_deliveries,
        request,
        scope,
        name=name,
        status=picked,
        limit=PAGE,
        before_id=before_id,
    )
    return page(
        request,
        scope,
        "destination.html",
        destination=destination,
        deliveries=found.items,
        next_cursor=found.next_cursor,
        filter_status=status,
        statuses=[s.value for s in DeliveryStatus],
        bulk=picked in REPLAYABLE,
        first_page=before_id is None,
    )


@router.post("/destinations/{name}/pause", dependencies=[Csrf])
def pause_destination(request: Request, scope: UiScope, name: DestinationName) -> Response:
    call(api.pause_destination, request, scope, name=name)
    return back(request, f"/ui/destinations/{name}", "destination_paused")


@router.post("/destinations/{name}/resume", dependencies=[Csrf])
def resume_destination(request: Request, scope: UiScope, name: DestinationName) -> Response:
    call(api.resume_destination, request, scope, name=name)
    return back(request, f"/ui/destinations/{name}", "destination_resumed")


@router.post("/destinations/{name}/discard", dependencies=[Csrf])
def discard_waiting(request: Request, scope: UiScope, name: DestinationName) -> Response:
    result = call(api.discard_waiting, request, scope, name=name)
    return back(request, f"/ui/destinations/{name}", "deliveries_discarded", n=result.discarded)


@router.post("/destinations/{name}/replay", dependencies=[Csrf])
def replay_deliveries(
    request: Request, scope: UiScope, name: DestinationName, status: FormWord = "dead"
) -> Response:
    """Replay the destination's deliveries of one status (dead, failed or delivered), as its
    page filtered on that status shows them."""
    picked = choice(DeliveryStatus, status)
    if picked not in REPLAYABLE:
        raise HTTPException(400, "bulk replay takes dead, failed or delivered deliveries")
    flt = DeliveryReplayFilter.model_validate({"destination": name, "status": picked})
    result = call(api.replay_deliveries, request, scope, flt=flt)
    return back(
        request, f"/ui/destinations/{name}?status={picked.value}", "deliveries_replayed",
        n=result.replayed,
    )  # fmt: skip


@router.get("/deliveries/{delivery_id:int}")
def show_delivery(request: Request, scope: UiScope, delivery_id: DeliveryId) -> Response:
    delivery = call(api.show_delivery, request, scope, delivery_id=delivery_id)
    return page(request, scope, "delivery.html", delivery=delivery)


@router.post("/deliveries/{delivery_id:int}/replay", dependencies=[Csrf])
def replay_delivery(request: Request, scope: UiScope, delivery_id: DeliveryId) -> Response:
    call(api.replay_delivery, request, scope, delivery_id=delivery_id)
    return back(request, f"/ui/deliveries/{delivery_id}", "delivery_replayed")
