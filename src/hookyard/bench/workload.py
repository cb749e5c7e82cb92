"""A realistic workload: deliveries of the four providers, signed as each provider signs
(the simulator's builders, hookyard.testing.simulate), mixed in chosen shares.

Entities repeat the way they do in production rather than all being new:

- C2S: a lead is created with a unique contact (e-mail, valid Brazilian mobile), updated a few
  times with the same contact, and some leads are closed; `updated_at` increases.
- Meta: status and quality changes of a pool of message templates over a few business
  accounts (WABAs); some requests carry two or three changes of one account.
- HubSpot: `company.propertyChange` of companies linked to customers (`companies`, created in
  the database before the run), of inbound fields (name, credit limit…) and outbound-only ones.
- TCR: carrier decisions (`MNO_CAMPAIGN_OPERATION_*` with `mnoStatuses`) on a pool of
  campaigns, and brand identity changes; the source's token in `?token=`.

Provider times come from one clock that starts weeks in the past and advances one second per
delivery, so every entity's events are in order and no two deliveries are alike (TCR and
Meta deduplicate by content). HubSpot's request timestamp is the real time of generation:
it is valid for five minutes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from hookyard.domain.tendlc.carriers import CARRIERS
from hookyard.inbox.model import NewEvent
from hookyard.providers.base import Source, SourceConfig, WebhookRequest
from hookyard.providers.c2s import C2SConfig
from hookyard.providers.hubspot import HubSpotConfig
from hookyard.providers.meta import MetaConfig
from hookyard.providers.tcr import TCRConfig
from hookyard.testing.simulate import (
    Delivery,
    c2s_delivery,
    c2s_payload,
    hubspot_delivery,
    hubspot_property_change,
    meta_delivery,
    meta_envelope,
    meta_quality_change,
    meta_status_change,
    tcr_delivery,
    tcr_payload,
)

PROVIDERS = ("c2s", "meta", "hubspot", "tcr")

_C = TypeVar("_C", bound=SourceConfig)


@dataclass(frozen=True)
class Mix:
    """Relative shares of the providers' deliveries, e.g. `c2s=2,meta=1,hubspot=1,tcr=1`."""

    shares: tuple[tuple[str, float], ...]

    @classmethod
    def parse(cls, text: str) -> Mix:
        shares: dict[str, float] = {}
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            name, _, weight = item.partition("=")
            name = name.strip()
            if name not in PROVIDERS:
                raise ValueError(f"unknown provider {name!r} (choose from {', '.join(PROVIDERS)})")
            try:
                value = float(weight) if weight else 1.0
            except ValueError:
                raise ValueError(f"{item!r}: the share is not a number") from None
            if not value >= 0 or value == float("inf"):
                raise ValueError(f"{item!r}: a share is a finite number >= 0")
            shares[name] = value
        if not shares or sum(shares.values()) <= 0:
            raise ValueError("the mix needs at least one provider with a share above 0")
        return cls(tuple((name, shares[name]) for name in PROVIDERS if shares.get(name)))

    def providers(self) -> list[str]:
        return [name for name, _ in self.shares]

    def __str__(self) -> str:
        return ",".join(f"{name}={weight:g}" for name, weight in self.shares)


EQUAL_MIX = Mix.parse("c2s=1,meta=1,hubspot=1,tcr=1")


@dataclass(frozen=True)
class Planned:
    """One delivery of the workload and how many events it carries."""

    provider: str
    source: str  # the name of the source it is addressed to
    delivery: Delivery
    events: int


def _pick(rng: random.Random, weighted: Sequence[tuple[Any, float]]) -> Any:
    choices, weights = zip(*weighted, strict=True)
    return rng.choices(choices, weights)[0]


# -- C2S ------------------------------------------------------------------------------------

FIRST_NAMES = ("Ana", "Bruno", "Carla", "Diego", "Elisa", "Fabio", "Gabriela", "Heitor",
               "Isabela", "Joao", "Larissa", "Marcos", "Natalia", "Otavio", "Paula", "Rafael",
               "Sofia", "Thiago", "Vanessa", "Wagner")  # fmt: skip
LAST_NAMES = ("Silva", "Santos", "Oliveira", "Souza", "Rodrigues", "Ferreira", "Alves",
              "Pereira", "Lima", "Gomes", "Costa", "Ribeiro", "Martins", "Carvalho", "Almeida",
              "Lopes", "Soares", "Fernandes", "Vieira", "Barbosa")  # fmt: skip
AREA_CODES = ("11", "21", "31", "41", "51", "61", "71", "81")
LEAD_SOURCES = ((1, "Facebook Ads"), (2, "Google Ads"), (3, "Site"), (4, "Portal Zap"),
                (5, "Indicacao"))  # fmt: skip
PRODUCTS = (
    (101, "Apartamento 2 quartos - Vila Mariana", "650000.00"),
    (102, "Casa 3 quartos - Jardim Botanico", "1250000.00"),
    (103, "Studio - Centro", "320000.00"),
    (104, "Cobertura - Savassi", "1890000.00"),
    (105, "Sala comercial - Batel", "540000.00"),
)
SELLERS = ((7, "Carlos Souza"), (8, "Mariana Lima"), (9, "Pedro Alves"), (10, "Julia Costa"))
LEAD_STATUS_OPEN = ("novo", "em_atendimento", "visita_agendada", "proposta")
NOTES = (
    "Cliente pediu contato pelo WhatsApp depois das 18h; interesse em financiamento.",
    "Quer agendar visita no fim de semana. Tem imovel para dar de entrada.",
    "Primeiro contato pelo portal; aguardando retorno sobre documentacao.",
    "Solicitou simulacao com FGTS e prazo de 30 anos.",
)


@dataclass
class _Lead:
    number: int
    lead_id: str
    customer: dict[str, str]
    created_at: str
    product: tuple[int, str, str]
    source: tuple[int, str]
    seller: tuple[int, str]
    steps: list[str]  # the actions still to send, in order


class _Leads:
    """Leads created, updated a few times with the same contact, some closed."""

    def __init__(self, rng: random.Random, tag: str) -> None:
        self.rng = rng
        self.tag = tag
        self.open: list[_Lead] = []
        self.created = 0

    def next(self, now: datetime) -> tuple[_Lead, str]:
        # About a third of the events create a lead; the rest advance one already known.
        if not self.open or (len(self.open) < 5000 and self.rng.random() < 0.35):
            lead = self._new(now)
            self.open.append(lead)
        else:
            lead = self.open[self.rng.randrange(len(self.open))]
        action = lead.steps.pop(0)
        if not lead.steps:
            self.open.remove(lead)
        return lead, action

    def _new(self, now: datetime) -> _Lead:
        n = self.created
        self.created += 1
        rng = self.rng
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        customer = {
            "name": f"{first} {last}",
            # Unique per lead: a lead's contact is its own.
            "email": f"{first}.{last}.{self.tag}{n}@example.com.br".lower(),
            "phone": f"{rng.choice(AREA_CODES)}9{n % 10**8:08d}",
        }
        updates = _pick(rng, [(0, 2), (1, 3), (2, 3), (3, 1), (4, 1)])
        steps = ["on_create_lead"] + ["on_update_lead"] * updates
        if rng.random() < 0.3:
            steps.append("on_close_lead")
        return _Lead(
            n,
            f"c2s-{self.tag}-{n}",
            customer,
            _iso(now),
            rng.choice(PRODUCTS),
            rng.choice(LEAD_SOURCES),
            rng.choice(SELLERS),
            steps,
        )


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- Meta -----------------------------------------------------------------------------------

# What a template's status may become next (Meta's events; REINSTATED makes it APPROVED).
NEXT_STATUS: Mapping[str | None, Sequence[tuple[str, float]]] = {
    None: (("APPROVED", 8), ("PENDING", 1), ("REJECTED", 1)),
    "PENDING": (("APPROVED", 4), ("REJECTED", 1)),
    "APPROVED": (("FLAGGED", 3), ("PAUSED", 3), ("DISABLED", 1)),
    "REJECTED": (("PENDING", 1),),
    "FLAGGED": (("REINSTATED", 2), ("PAUSED", 1)),
    "PAUSED": (("REINSTATED", 3), ("DISABLED", 1)),
    "DISABLED": (("IN_APPEAL", 1),),
    "IN_APPEAL": (("REINSTATED", 1), ("REJECTED", 1)),
}
NEXT_QUALITY: Mapping[str, Sequence[tuple[str, float]]] = {
    "UNKNOWN": (("GREEN", 1),),
    "GREEN": (("YELLOW", 1),),
    "YELLOW": (("GREEN", 2), ("RED", 1)),
    "RED": (("YELLOW", 1),),
}
TEMPLATE_NAMES = ("order_update", "payment_reminder", "delivery_status", "appointment_reminder",
                  "welcome", "password_reset", "promo_weekly", "feedback_request")  # fmt: skip
LANGUAGES = ("pt_BR", "en_US", "es")


@dataclass
class _Template:
    waba_id: str
    template_id: int
    name: str
    language: str
    status: str | None = None
    quality: str = "UNKNOWN"


class _Templates:
    def __init__(self, rng: random.Random, wabas: int, per_waba: int) -> None:
        self.rng = rng
        self.by_waba: dict[str, list[_Template]] = {}
        for w in range(wabas):
            waba_id = str(102290129340398 + w * 7919)
            self.by_waba[waba_id] = [
                _Template(
                    waba_id,
                    594425479261596 + w * 100_000 + t,
                    f"{TEMPLATE_NAMES[t % len(TEMPLATE_NAMES)]}_{t // len(TEMPLATE_NAMES)}",
                    LANGUAGES[t % len(LANGUAGES)],
                )
                for t in range(per_waba)
            ]

    def changes(self, now: datetime) -> tuple[str, list[dict[str, Any]]]:
        """One request's changes: one to three templates of one account."""
        rng = self.rng
        waba_id = rng.choice(list(self.by_waba))
        count = _pick(rng, [(1, 75), (2, 17), (3, 8)])
        return waba_id, [self._change(t, now) for t in rng.sample(self.by_waba[waba_id], count)]

    def _change(self, template: _Template, now: datetime) -> dict[str, Any]:
        rng = self.rng
        if template.status is not None and rng.random() < 0.4:
            new = _pick(rng, NEXT_QUALITY[template.quality])
            change = meta_quality_change(
                template.template_id,
                template.name,
                template.language,
                template.quality,
                new,
            )
            template.quality = new
            return change
        event = _pick(rng, NEXT_STATUS[template.status])
        extra: dict[str, Any] = {}
        reason = "NONE"
        if event == "REJECTED":
            reason = rng.choice(("INVALID_FORMAT", "ABUSIVE_CONTENT", "INCORRECT_CATEGORY"))
        elif event == "PAUSED":
            extra["other_info"] = {
                "title": rng.choice(("FIRST_PAUSE", "SECOND_PAUSE")),
                "description": "Your message template has been paused for 3 hours "
                "because of low quality.",
            }
        elif event == "DISABLED":
            extra["disable_info"] = {"disable_date": _iso(now)}
        change = meta_status_change(
            template.template_id,
            template.name,
            template.language,
            event,
            reason=reason,
            **extra,
        )
        template.status = "APPROVED" if event == "REINSTATED" else event
        return change


# -- HubSpot --------------------------------------------------------------------------------

COMPANY_WORDS = ("Telecom", "Solucoes", "Logistica", "Comercio", "Tecnologia", "Servicos",
                 "Distribuidora", "Engenharia")  # fmt: skip
COMPANY_NAMES = ("Ringer", "Aurora", "Boreal", "Cidade", "Delta", "Estrela", "Faro", "Granito",
                 "Horizonte", "Ipe", "Jatoba", "Lumen")  # fmt: skip
SERVICE_SETS = ("voice", "voice;messaging", "messaging", "voice;messaging;telecom_data",
                "telecom_data")  # fmt: skip
# Properties HubSpot sends changes of, with their shares: inbound fields (HubSpot's values
# are applied, or raise a conflict) and outbound-only ones (only recorded).
HUBSPOT_PROPERTIES: tuple[tuple[str, float], ...] = (
    ("name", 30),
    ("hookyard_credit_limit", 25),
    ("hookyard_status", 8),
    ("hookyard_services", 7),
    ("hookyard_customer_type", 5),
    ("hookyard_current_balance", 15),
    ("hookyard_ban", 10),
)
CHANGE_SOURCES = (("CRM_UI", 6), ("IMPORT", 1), ("INTEGRATION", 2), ("API", 1))


@dataclass(frozen=True)
class Company:
    """A HubSpot company linked to a customer the bench creates before the run."""

    company_id: int
    name: str
    ban: str


class _Companies:
    def __init__(self, rng: random.Random, count: int) -> None:
        self.rng = rng
        self.companies = [
            Company(
                18442069817 + n * 37,
                f"{COMPANY_NAMES[n % len(COMPANY_NAMES)]} "
                f"{COMPANY_WORDS[(n // len(COMPANY_NAMES)) % len(COMPANY_WORDS)]} {n}",
                f"BK{100000000 + n:09d}",
            )
            for n in range(count)
        ]

    def change(self, event_id: int, occurred_ms: int) -> dict[str, Any]:
        rng = self.rng
        company = rng.choice(self.companies)
        prop = _pick(rng, HUBSPOT_PROPERTIES)
        value: str
        if prop == "name":
            value = company.name + rng.choice((" Ltda", " S.A.", " ME", ""))
        elif prop == "hookyard_credit_limit":
            value = str(rng.randrange(10, 200) * 500)
        elif prop == "hookyard_status":
            value = rng.choice(("active", "active", "suspended"))
        elif prop == "hookyard_services":
            value = rng.choice(SERVICE_SETS)
        elif prop == "hookyard_customer_type":
            value = rng.choice(("business", "enterprise"))
        elif prop == "hookyard_current_balance":
            value = f"{rng.randrange(0, 5_000_000) / 100:.2f}"
        else:
            value = company.ban
        return hubspot_property_change(
            company.company_id,
            prop,
            value,
            event_id=event_id,
            occurred_at=occurred_ms,
            change_source=_pick(rng, CHANGE_SOURCES),
        )


# -- TCR ------------------------------------------------------------------------------------

_ID_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
# A carrier's status, the event that moves it on, and the status that event gives.
CARRIER_STEPS: Mapping[str | None, Sequence[tuple[tuple[str, str], float]]] = {
    None: ((("MNO_CAMPAIGN_OPERATION_REVIEW", "REVIEW"), 1),),
    "REVIEW": (
        (("MNO_CAMPAIGN_OPERATION_APPROVED", "APPROVED"), 85),
        (("MNO_CAMPAIGN_OPERATION_REJECTED", "REJECTED"), 15),
    ),
    "APPROVED": ((("MNO_CAMPAIGN_OPERATION_SUSPENDED", "SUSPENDED"), 1),),
    "SUSPENDED": ((("MNO_CAMPAIGN_OPERATION_UNSUSPENDED", "APPROVED"), 1),),
    "REJECTED": ((("MNO_CAMPAIGN_OPERATION_REVIEW", "REVIEW"), 1),),
}
NEXT_IDENTITY: Mapping[str | None, Sequence[tuple[str, float]]] = {
    None: (("VERIFIED", 6), ("UNVERIFIED", 2), ("SELF_DECLARED", 1)),
    "UNVERIFIED": (("VERIFIED", 3), ("UNVERIFIED", 1)),
    "SELF_DECLARED": (("VERIFIED", 1),),
    "VERIFIED": (("VETTED_VERIFIED", 3), ("VERIFIED", 1)),
    "VETTED_VERIFIED": (("VETTED_VERIFIED", 1), ("VERIFIED", 1)),
}


def _tcr_id(prefix: str, n: int) -> str:
    # Seven characters like TCR's (BBPD732, CQ4ZKDM), distinct for each n.
    chars = []
    for _ in range(6):
        n, digit = divmod(n, len(_ID_LETTERS))
        chars.append(_ID_LETTERS[digit])
    return prefix + "".join(reversed(chars))


@dataclass
class _Brand:
    brand_id: str
    identity: str | None = None


@dataclass
class _Campaign:
    campaign_id: str
    brand: _Brand
    carriers: dict[str, str | None]  # MNO id -> its status (None: not reviewed yet)

    @property
    def settled(self) -> bool:
        return all(s in ("APPROVED", "REJECTED") for s in self.carriers.values())


class _Registry:
    """Brands and their campaigns. New campaigns keep arriving and go through carrier review
    (REVIEW, then APPROVED or REJECTED per carrier); a settled campaign is now and then
    suspended and reinstated by a carrier."""

    def __init__(self, rng: random.Random, brands: int, in_review: int, offset: int) -> None:
        self.rng = rng
        self.offset = offset
        self.review_size = in_review
        self.brands = [_Brand(_tcr_id("B", offset + n)) for n in range(brands)]
        self.in_review: list[_Campaign] = []
        self.settled: list[_Campaign] = []
        self.campaigns = 0

    def _new_campaign(self) -> _Campaign:
        rng = self.rng
        if rng.random() < 0.1:
            self.brands.append(_Brand(_tcr_id("B", self.offset + len(self.brands))))
        carriers = rng.sample(sorted(CARRIERS), rng.choice((2, 3, 3, 4)))
        campaign = _Campaign(
            _tcr_id("C", self.offset + self.campaigns),
            rng.choice(self.brands),
            dict.fromkeys(carriers),
        )
        self.campaigns += 1
        return campaign

    def carrier_event(self, timestamp: str) -> dict[str, Any]:
        """A carrier decision: the event moves one carrier of a campaign on, and every other
        carrier of that campaign in the same status with it (up to three in one event)."""
        rng = self.rng
        if self.settled and rng.random() < 0.15:
            campaign = rng.choice(self.settled)
        else:
            if len(self.in_review) < self.review_size:
                self.in_review.append(self._new_campaign())
            campaign = rng.choice(self.in_review)
        carriers = campaign.carriers
        unsettled = sorted(m for m, s in carriers.items() if s not in ("APPROVED", "REJECTED"))
        first = rng.choice(unsettled or sorted(carriers))
        event_type, status = _pick(rng, CARRIER_STEPS[carriers[first]])
        moving = [first] + [
            mno for mno in sorted(carriers) if mno != first and carriers[mno] == carriers[first]
        ]
        moving = moving[: rng.choice((1, 2, 3))]
        for mno in moving:
            carriers[mno] = status
        if campaign in self.in_review and campaign.settled:
            self.in_review.remove(campaign)
            self.settled.append(campaign)
        return tcr_payload(
            event_type,
            brand_id=campaign.brand.brand_id,
            campaign_id=campaign.campaign_id,
            timestamp=timestamp,
            mnoStatuses={mno: status for mno in sorted(moving)},
        )

    def brand_event(self, timestamp: str) -> dict[str, Any]:
        rng = self.rng
        brand = rng.choice(self.brands)
        identity = _pick(rng, NEXT_IDENTITY[brand.identity])
        brand.identity = identity
        return tcr_payload(
            "BRAND_IDENTITY_STATUS_UPDATE",
            brand_id=brand.brand_id,
            timestamp=timestamp,
            brandIdentityStatus=identity,
            trustScore=rng.randrange(40, 96),
        )


# -- the mix --------------------------------------------------------------------------------


class Workload:
    """An endless, reproducible stream of deliveries to `base_url` (`http://host:port`, the
    address the requests are sent to: HubSpot signs it), for the sources of
    `hookyard.bench.sources.provider_entries`."""

    def __init__(
        self,
        sources: Mapping[str, Source],
        base_url: str,
        mix: Mix = EQUAL_MIX,
        *,
        seed: int = 0,
        tag: str = "b",
        start: datetime | None = None,
        # The pools are wide enough that two workers rarely wait on each other's row locks
        # (a few hundred events per entity and hour at thousands per second), and small
        # enough that every entity hears again and again during a run.
        companies: int = 1000,
        wabas: int = 10,
        templates_per_waba: int = 50,
        brands: int = 300,
        campaigns_in_review: int = 400,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.mix = mix
        self.rng = random.Random(seed)
        self.tag = tag
        self.c2s = _config(sources, "c2s", C2SConfig)
        self.meta = _config(sources, "meta", MetaConfig)
        self.hubspot = _config(sources, "hubspot", HubSpotConfig)
        self.tcr_brands = _config(sources, "tcr-brands", TCRConfig)
        self.tcr_campaigns = _config(sources, "tcr-campaigns", TCRConfig)
        # Weeks of one-second steps fit between the start and now: times never reach the
        # future (where hookyard would clamp them).
        self.start = start or datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
        self._clock = self.start
        self._leads = _Leads(self.rng, tag)
        self._templates = _Templates(self.rng, wabas, templates_per_waba)
        self._companies = _Companies(self.rng, companies)
        self._registry = _Registry(
            self.rng, brands, campaigns_in_review, offset=self.rng.randrange(10**8)
        )
        self._hubspot_events = int(self.start.timestamp()) * 1000
        self._builders: dict[str, Callable[[datetime], Planned]] = {
            "c2s": self._c2s,
            "meta": self._meta,
            "hubspot": self._hubspot,
            "tcr": self._tcr,
        }
        self.made = 0

    @property
    def companies(self) -> list[Company]:
        return list(self._companies.companies)

    @property
    def customers_changed_at(self) -> datetime:
        """When our side of the seeded customers last changed: before any HubSpot change."""
        return self.start - timedelta(days=1)

    def next(self) -> Planned:
        self._clock += timedelta(seconds=1)
        provider = _pick(self.rng, self.mix.shares)
        self.made += 1
        return self._builders[provider](self._clock)

    def take(self, count: int) -> list[Planned]:
        return [self.next() for _ in range(count)]

    def _url(self, path: str) -> str:
        return self.base_url + path

    def _c2s(self, now: datetime) -> Planned:
        lead, action = self._leads.next(now)
        rng = self.rng
        status = "fechado" if action == "on_close_lead" else rng.choice(LEAD_STATUS_OPEN)
        product_id, product, price = lead.product
        source_id, source = lead.source
        seller_id, seller = lead.seller
        payload = c2s_payload(
            lead.lead_id,
            action,
            updated_at=_iso(now),
            customer=lead.customer,
            created_at=lead.created_at,
            status={"alias": status},
            product={"id": product_id, "name": product, "price": price},
            source={"id": source_id, "name": source},
            channel=rng.choice(("whatsapp", "site", "telefone")),
            seller={
                "id": seller_id,
                "name": seller,
                "email": seller.lower().replace(" ", ".") + "@example.com.br",
            },
            description=rng.choice(NOTES),
            tags=rng.sample(("site", "campanha-verao", "financiamento", "retorno"), 2),
        )
        delivery = c2s_delivery(self._url(self.c2s.path), payload, self.c2s.token)
        return Planned("c2s", self.c2s.name, delivery, 1)

    def _meta(self, now: datetime) -> Planned:
        waba_id, changes = self._templates.changes(now)
        envelope = meta_envelope(changes, waba_id=waba_id, sent=int(now.timestamp()))
        delivery = meta_delivery(self.meta.app_secret, self._url(self.meta.path), envelope)
        return Planned("meta", self.meta.name, delivery, len(changes))

    def _hubspot(self, now: datetime) -> Planned:
        count = _pick(self.rng, [(1, 80), (2, 15), (3, 5)])
        base_ms = int(now.timestamp() * 1000)
        items = []
        for i in range(count):
            self._hubspot_events += 1
            items.append(self._companies.change(self._hubspot_events, base_ms + i))
        delivery = hubspot_delivery(
            self.hubspot.client_secret,
            self._url(self.hubspot.path),
            items,
            timestamp_ms=int(time.time() * 1000),
        )
        return Planned("hubspot", self.hubspot.name, delivery, count)

    def _tcr(self, now: datetime) -> Planned:
        stamp = _iso(now)
        if self.rng.random() < 0.7:
            config = self.tcr_campaigns
            payload = self._registry.carrier_event(stamp)
        else:
            config = self.tcr_brands
            payload = self._registry.brand_event(stamp)
        delivery = tcr_delivery(self._url(config.path), payload, config.token)
        return Planned("tcr", config.name, delivery, 1)


def _config(sources: Mapping[str, Source], name: str, kind: type[_C]) -> _C:
    source = sources.get(name)
    if source is None or not isinstance(source.config, kind):
        raise ValueError(f"the workload needs a {kind.__name__} source named {name!r}")
    return source.config


def webhook_request(delivery: Delivery) -> WebhookRequest:
    """`delivery` as ingress hands it to an adapter."""
    parts = urlsplit(delivery.url)
    return WebhookRequest(
        method=delivery.method,
        url=delivery.url,
        path=parts.path,
        query=dict(parse_qsl(parts.query)) if parts.query else {},
        headers={name.lower(): value for name, value in delivery.headers.items()},
        body=delivery.body,
    )


def new_events(source: Source, delivery: Delivery, received_at: datetime) -> list[NewEvent]:
    """The inbox rows ingress would store for `delivery` (verified, parsed by the adapter)."""
    from hookyard.ingress.app import stored_headers

    request = webhook_request(delivery)
    if (reason := source.adapter.verify(request)) is not None:
        raise ValueError(f"a {source.config.provider} delivery does not verify: {reason}")
    kept = stored_headers(dict(request.headers), source.adapter.secret_headers)
    return [
        NewEvent.of(
            source, p, headers=kept, body=request.body, received_at=received_at, request=request
        )
        for p in source.adapter.parse(request)
    ]
