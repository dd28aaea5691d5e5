"""The gateway's public contract (lienthong.gateway.v1), a smaller set: what
a citizen's portal relies on. A submission is answered with a dossier id and
can be read back; a repeat with the same idempotency key is the same dossier;
a key reused for another declaration is refused; a dossier that lacks data
waits for a supplement, which is accepted.

The declarations name people no agency knows (fresh random numbers): the
dossiers the kit submits end REJECTED, which the kit does not judge. What an
agency decides is the agency kits' business.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import grpc

from conformance import wire
from conformance.identity import adult_birthday, id_number
from conformance.kit import CALL_TIMEOUT_SECONDS, Context, Failure, RuleBook
from conformance.wire import answer, expect, refusal
from lienthong.common.v1.common_pb2 import SEX_FEMALE, SEX_MALE
from lienthong.gateway.v1 import gateway_pb2 as pb
from lienthong.gateway.v1 import gateway_pb2_grpc as pb_grpc

SERVICE = pb.DESCRIPTOR.services_by_name["GatewayService"]
book = RuleBook("gateway", SERVICE.full_name)
rule = book.rule

Code = grpc.StatusCode
T = CALL_TIMEOUT_SECONDS
# How long a dossier lacking data may take to be found so by the saga.
SUPPLEMENT_WAIT_SECONDS = 30.0


def stub(ctx: Context) -> Any:
    return pb_grpc.GatewayServiceStub(ctx.channel)


def _short(message: Any) -> str:
    return " ".join(str(message).split())[:160]


def declarant(ctx: Context, sex: int = SEX_FEMALE) -> pb.Declarant:
    return pb.Declarant(
        personal_id_number=id_number(ctx, "001", adult_birthday(1975), sex),
        full_name="Nguyễn Thị Lan" if sex == SEX_FEMALE else "Trần Văn Minh",
        relationship="mother" if sex == SEX_FEMALE else "son",
        phone="0912345678",
    )


def birth_form(ctx: Context, **fields: Any) -> pb.BirthDeclaration:
    mother = declarant(ctx)
    values: dict[str, Any] = {
        "declarant": mother,
        "child_full_name": "Trần Ngọc Anh",
        "child_sex": SEX_FEMALE,
        "child_date_of_birth": (ctx.today - dt.timedelta(days=3)).isoformat(),
        "place_of_birth": "Bệnh viện Phụ sản Hà Nội",
        "ethnicity": "Kinh",
        "nationality": "Việt Nam",
        "birth_certificate_number": f"GCS-CF-{ctx.fresh.token(12)}",
        "mother_id_number": mother.personal_id_number,
        "registration_province_code": "001",
        "residence_household_id": f"HK-CONFORM-{ctx.fresh.token(12)}",
        "initial_facility_code": "01003",
        "delivery_method": pb.DELIVERY_METHOD_ONLINE,
    }
    values.update(fields)
    return pb.BirthDeclaration(**values)


def death_form(ctx: Context, **fields: Any) -> pb.DeathDeclaration:
    values: dict[str, Any] = {
        "declarant": declarant(ctx, SEX_MALE),
        "deceased_id_number": id_number(ctx, "001", adult_birthday(1930, 1960), SEX_MALE),
        "date_of_death": (ctx.today - dt.timedelta(days=3)).isoformat(),
        "time_of_death": "06:30",
        "place_of_death": "Bệnh viện Bạch Mai",
        "delivery_method": pb.DELIVERY_METHOD_ONLINE,
    }
    values.update(fields)
    return pb.DeathDeclaration(**values)


def birth_submission(ctx: Context, form: pb.BirthDeclaration) -> pb.SubmitBirthDeclarationRequest:
    key = f"conform-{ctx.fresh.token(16)}"
    return pb.SubmitBirthDeclarationRequest(idempotency_key=key, declaration=form)


def death_submission(ctx: Context, form: pb.DeathDeclaration) -> pb.SubmitDeathDeclarationRequest:
    key = f"conform-{ctx.fresh.token(16)}"
    return pb.SubmitDeathDeclarationRequest(idempotency_key=key, declaration=form)


async def submit_birth(ctx: Context, request: pb.SubmitBirthDeclarationRequest) -> str:
    reply = await answer(
        stub(ctx).SubmitBirthDeclaration(request, timeout=T), "SubmitBirthDeclaration"
    )
    return str(reply.dossier_id)


async def submit_death(ctx: Context, request: pb.SubmitDeathDeclarationRequest) -> str:
    reply = await answer(
        stub(ctx).SubmitDeathDeclaration(request, timeout=T), "SubmitDeathDeclaration"
    )
    return str(reply.dossier_id)


async def dossier(ctx: Context, dossier_id: str) -> Any:
    reply = await answer(
        stub(ctx).GetDossier(pb.GetDossierRequest(dossier_id=dossier_id), timeout=T),
        f"GetDossier({dossier_id})",
    )
    return reply.dossier


def unknown_dossier(ctx: Context) -> str:
    return f"birth-conform-{ctx.fresh.token(12).lower()}"


# ---- submissions ---------------------------------------------------------------------


@rule(
    "submit_birth_declaration.happy_path",
    "a complete birth declaration is answered with a dossier id; GetDossier reads it back, "
    "kind BIRTH, the declaration as sent",
)
async def _(ctx: Context) -> str:
    request = birth_submission(ctx, birth_form(ctx))
    dossier_id = await submit_birth(ctx, request)
    expect(bool(dossier_id), "the answer has no dossier id")
    found = await dossier(ctx, dossier_id)
    expect(found.dossier_id == dossier_id, f"GetDossier answers {found.dossier_id!r}")
    expect(found.kind == pb.DOSSIER_KIND_BIRTH, f"kind {pb.DossierKind.Name(found.kind)}")
    expect(
        found.birth_declaration == request.declaration,
        f"stored declaration {_short(found.birth_declaration)}",
    )
    expect(found.state != pb.DOSSIER_STATE_UNSPECIFIED, "state UNSPECIFIED")
    expect(found.HasField("submitted_at"), "no submitted_at")
    return f"{dossier_id}, {pb.DossierState.Name(found.state)}"


@rule(
    "submit_birth_declaration.idempotent_repeat",
    "the same key and declaration sent again answer the same dossier id",
)
async def _(ctx: Context) -> str:
    request = birth_submission(ctx, birth_form(ctx))
    first = await submit_birth(ctx, request)
    repeat = await submit_birth(ctx, request)
    expect(first == repeat, f"first {first}, repeat {repeat}")
    return f"both: {first}"


@rule(
    "submit_birth_declaration.key_reused",
    "a key reused for another declaration: INVALID_ARGUMENT naming idempotency_key",
)
async def _(ctx: Context) -> str:
    request = birth_submission(ctx, birth_form(ctx))
    await submit_birth(ctx, request)
    other = pb.SubmitBirthDeclarationRequest(
        idempotency_key=request.idempotency_key, declaration=birth_form(ctx)
    )
    return await refusal(
        stub(ctx).SubmitBirthDeclaration(other, timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["idempotency_key"],
    )


@rule(
    "submit_birth_declaration.future_birth",
    "a child born a month from now: INVALID_ARGUMENT naming declaration.child_date_of_birth",
)
async def _(ctx: Context) -> str:
    born = (ctx.today + dt.timedelta(days=30)).isoformat()
    request = birth_submission(ctx, birth_form(ctx, child_date_of_birth=born))
    return await refusal(
        stub(ctx).SubmitBirthDeclaration(request, timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["declaration.child_date_of_birth"],
    )


@rule(
    "submit_birth_declaration.field_violations",
    "an empty request: INVALID_ARGUMENT naming idempotency_key and declaration",
)
async def _(ctx: Context) -> str:
    return await refusal(
        stub(ctx).SubmitBirthDeclaration(pb.SubmitBirthDeclarationRequest(), timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["idempotency_key", "declaration"],
    )


@rule(
    "submit_death_declaration.happy_path",
    "a complete death declaration is answered with a dossier id; GetDossier reads it back, "
    "kind DEATH, the declaration as sent",
)
async def _(ctx: Context) -> str:
    request = death_submission(ctx, death_form(ctx))
    dossier_id = await submit_death(ctx, request)
    expect(bool(dossier_id), "the answer has no dossier id")
    found = await dossier(ctx, dossier_id)
    expect(found.kind == pb.DOSSIER_KIND_DEATH, f"kind {pb.DossierKind.Name(found.kind)}")
    expect(
        found.death_declaration == request.declaration,
        f"stored declaration {_short(found.death_declaration)}",
    )
    return f"{dossier_id}, {pb.DossierState.Name(found.state)}"


@rule(
    "submit_death_declaration.idempotent_repeat",
    "the same key and declaration sent again answer the same dossier id",
)
async def _(ctx: Context) -> str:
    request = death_submission(ctx, death_form(ctx))
    first = await submit_death(ctx, request)
    repeat = await submit_death(ctx, request)
    expect(first == repeat, f"first {first}, repeat {repeat}")
    return f"both: {first}"


@rule(
    "submit_death_declaration.key_reused",
    "a key reused for another declaration: INVALID_ARGUMENT naming idempotency_key",
)
async def _(ctx: Context) -> str:
    request = death_submission(ctx, death_form(ctx))
    await submit_death(ctx, request)
    other = pb.SubmitDeathDeclarationRequest(
        idempotency_key=request.idempotency_key, declaration=death_form(ctx)
    )
    return await refusal(
        stub(ctx).SubmitDeathDeclaration(other, timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["idempotency_key"],
    )


@rule(
    "submit_death_declaration.field_violations",
    "a declaration without the deceased's number: INVALID_ARGUMENT naming "
    "declaration.deceased_id_number",
)
async def _(ctx: Context) -> str:
    request = death_submission(ctx, death_form(ctx, deceased_id_number=""))
    return await refusal(
        stub(ctx).SubmitDeathDeclaration(request, timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["declaration.deceased_id_number"],
    )


# ---- reading dossiers ------------------------------------------------------------------


@rule("get_dossier.happy_path", "GetDossier answers a submitted dossier by its id")
async def _(ctx: Context) -> str:
    dossier_id = await submit_death(ctx, death_submission(ctx, death_form(ctx)))
    found = await dossier(ctx, dossier_id)
    expect(found.dossier_id == dossier_id, f"GetDossier answers {found.dossier_id!r}")
    return f"{dossier_id}: {pb.DossierState.Name(found.state)}"


@rule("get_dossier.not_found", "an id no dossier has: NOT_FOUND DOSSIER_NOT_FOUND")
async def _(ctx: Context) -> str:
    request = pb.GetDossierRequest(dossier_id=unknown_dossier(ctx))
    return await refusal(
        stub(ctx).GetDossier(request, timeout=T), Code.NOT_FOUND, reason="DOSSIER_NOT_FOUND"
    )


@rule("get_dossier.field_violations", "an empty dossier id: INVALID_ARGUMENT naming dossier_id")
async def _(ctx: Context) -> str:
    return await refusal(
        stub(ctx).GetDossier(pb.GetDossierRequest(), timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["dossier_id"],
    )


async def first_watched(ctx: Context, dossier_id: str) -> Any:
    async def first() -> Any:
        request = pb.WatchDossierRequest(dossier_id=dossier_id)
        async for update in stub(ctx).WatchDossier(request, timeout=T):
            return update.dossier
        raise Failure("WatchDossier ended without a message")

    return await first()


@rule(
    "watch_dossier.happy_path",
    "WatchDossier's first message is the dossier as it stands",
)
async def _(ctx: Context) -> str:
    dossier_id = await submit_birth(ctx, birth_submission(ctx, birth_form(ctx)))
    watched = await answer(first_watched(ctx, dossier_id), "WatchDossier")
    expect(watched.dossier_id == dossier_id, f"first message {_short(watched)}")
    return f"{dossier_id}: {pb.DossierState.Name(watched.state)}"


@rule("watch_dossier.not_found", "an id no dossier has: NOT_FOUND DOSSIER_NOT_FOUND")
async def _(ctx: Context) -> str:
    return await refusal(
        first_watched(ctx, unknown_dossier(ctx)), Code.NOT_FOUND, reason="DOSSIER_NOT_FOUND"
    )


# ---- supplements -----------------------------------------------------------------------


async def needing_supplement(ctx: Context) -> str:
    """A birth dossier without the child's name, once the gateway asks for it."""
    form = birth_form(ctx, child_full_name="")
    dossier_id = await submit_birth(ctx, birth_submission(ctx, form))

    async def asked() -> Any:
        request = pb.WatchDossierRequest(dossier_id=dossier_id)
        last = None
        async for update in stub(ctx).WatchDossier(request):
            last = update.dossier
            if last.state == pb.DOSSIER_STATE_NEEDS_SUPPLEMENT:
                return last
        raise Failure(f"the dossier ended {_short(last)} without asking for a supplement")

    try:
        found = await asyncio.wait_for(answer(asked(), "WatchDossier"), SUPPLEMENT_WAIT_SECONDS)
    except TimeoutError:
        raise Failure(
            f"{dossier_id} lacks child_full_name and was not NEEDS_SUPPLEMENT within "
            f"{SUPPLEMENT_WAIT_SECONDS:g} s"
        ) from None
    missing = list(found.supplement.missing_fields)
    expect("child_full_name" in missing, f"the supplement asks for {missing}")
    return dossier_id


@rule(
    "supplement_dossier.happy_path",
    "a birth declaration without the child's name waits NEEDS_SUPPLEMENT naming "
    "child_full_name; the supplement is accepted, and accepted again when repeated",
)
async def _(ctx: Context) -> str:
    dossier_id = await needing_supplement(ctx)
    request = pb.SupplementDossierRequest(
        dossier_id=dossier_id,
        idempotency_key=f"conform-{ctx.fresh.token(16)}",
        birth_declaration=pb.BirthDeclaration(child_full_name="Trần Ngọc Anh"),
    )
    reply = await answer(stub(ctx).SupplementDossier(request, timeout=T), "SupplementDossier")
    expect(reply.dossier_id == dossier_id, f"answered {reply.dossier_id!r}")
    again = await answer(stub(ctx).SupplementDossier(request, timeout=T), "repeated")
    expect(again.dossier_id == dossier_id, f"the repeat answered {again.dossier_id!r}")
    return f"{dossier_id} supplemented"


@rule(
    "supplement_dossier.not_awaiting",
    "a supplement to a dossier that asked for none: FAILED_PRECONDITION NOT_AWAITING_SUPPLEMENT",
)
async def _(ctx: Context) -> str:
    dossier_id = await submit_birth(ctx, birth_submission(ctx, birth_form(ctx)))
    request = pb.SupplementDossierRequest(
        dossier_id=dossier_id,
        idempotency_key=f"conform-{ctx.fresh.token(16)}",
        birth_declaration=pb.BirthDeclaration(ethnicity="Tày"),
    )
    return await refusal(
        stub(ctx).SupplementDossier(request, timeout=T),
        Code.FAILED_PRECONDITION,
        reason="NOT_AWAITING_SUPPLEMENT",
    )


@rule("supplement_dossier.not_found", "an id no dossier has: NOT_FOUND DOSSIER_NOT_FOUND")
async def _(ctx: Context) -> str:
    request = pb.SupplementDossierRequest(
        dossier_id=unknown_dossier(ctx),
        idempotency_key=f"conform-{ctx.fresh.token(16)}",
        birth_declaration=pb.BirthDeclaration(ethnicity="Tày"),
    )
    return await refusal(
        stub(ctx).SupplementDossier(request, timeout=T),
        Code.NOT_FOUND,
        reason="DOSSIER_NOT_FOUND",
    )


@rule(
    "supplement_dossier.field_violations",
    "an empty request: INVALID_ARGUMENT naming dossier_id and idempotency_key",
)
async def _(ctx: Context) -> str:
    return await refusal(
        stub(ctx).SupplementDossier(pb.SupplementDossierRequest(), timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["dossier_id", "idempotency_key"],
    )


# ---- the wire ------------------------------------------------------------------------

wire.add_wire_rules(book, SERVICE)
