"""What Genesys' two published Engagement clients send and parse, written down as data.

Read from the SDKs' model and API files (never copied; only the facts that matter to the wire):

- Java: ``GenesysPureEngage/engagement-client-java``, newest stored generation (OpenAPI spec
  3.0.000.19.016, generated 2022-01-27), ``src/main/java/com/genesys/internal/engagement/
  {model,api}/*.java`` and ``common/JSON.java`` / ``ApiClient.java``. Gson parses the answers.
- JavaScript: ``GenesysPureEngage/engagement-client-js``, newest stored generation (spec
  3.0.000.19.015), ``src/model/*.js``, ``src/api/*.js``, ``src/ApiClient.js``. superagent sends
  ``JSON.stringify(body)``; ``ApiClient.convertToType`` parses the answers.

Types are written in each SDK's own vocabulary (``checker.py`` knows how each one parses them):
Java ``String``, ``BigDecimal``, ``UUID``, ``OffsetDateTime``, ``Boolean``, ``Object``;
JavaScript ``String``, ``Number``, ``Date``, ``Boolean``, ``Object``; both ``ListOf``,
``MapOf`` (string keys) and ``Ref`` (another model of the same SDK).

Where the two SDKs disagree both are kept, each under its SDK (noted at the model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class ListOf:
    item: Type


@dataclass(frozen=True)
class MapOf:
    value: Type


@dataclass(frozen=True)
class Ref:
    model: str


Type = str | ListOf | MapOf | Ref


@dataclass(frozen=True)
class Field:
    type: Type
    required: bool = False


@dataclass(frozen=True)
class Model:
    """A model class: its fields, or (``items``/``values``) a list or map it extends."""

    source: str
    fields: dict[str, Field] = field(default_factory=dict)
    items: Type | None = None
    values: Type | None = None


def _f(t: Type, required: bool = False) -> Field:
    return Field(t, required)


# --- shared wording ------------------------------------------------------------------------------

CB_OFFER_TYPE_DEFAULT = (
    "ASAP if the request does not include the desiredTime parameter and SCHEDULED if the "
    "request includes the desiredTime parameter."
)
"""The literal default of ``CreateCallbackParms.cbOfferType`` in both SDKs (a sentence, not a
type: the generator put the documentation into the default)."""

LANGUAGE_DEFAULT = "en-US"


# --- Java (engagement-client-java, model/*.java) -------------------------------------------------

_J = "engagement-client-java src/main/java/com/genesys/internal/engagement/model/"


def _java_status(name: str) -> Model:
    # Every status model: code BigDecimal, message String, corrId java.util.UUID.
    return Model(
        _J + f"{name}.java",
        {"code": _f("BigDecimal"), "message": _f("String"), "corrId": _f("UUID")},
    )


def _java_envelope(name: str, status: str, data: Type | None) -> Model:
    fields = {"status": _f(Ref(status))}
    if data is not None:
        fields["data"] = _f(data)
    return Model(_J + f"{name}.java", fields)


JAVA_MODELS: dict[str, Model] = {
    # requests
    "CreateCallbackParms": Model(
        _J + "CreateCallbackParms.java",
        {
            "serviceName": _f("String", True),
            "phoneNumber": _f("String", True),
            "desiredTime": _f("OffsetDateTime"),
            "cbOfferType": _f("String"),
            "language": _f("String"),
            "inboundVQ": _f("String"),
            "offerThreshold": _f("BigDecimal"),
            "channel": _f("String"),
            "offerTiming": _f("String"),
            "cbOriginationIxnId": _f("String"),
            "surveyRP": _f("String"),
            "priority": _f("BigDecimal"),
            "routePoint": _f("String"),
            "userData": _f(MapOf("Object")),
            "captchaToken": _f("String"),
            "pushTargets": _f(ListOf(Ref("PushTarget"))),
            "alwaysCheckCapacity": _f("Boolean"),
        },
    ),
    "PushTarget": Model(
        _J + "PushTarget.java", {"channel": _f("String", True), "target": _f("String", True)}
    ),
    "CallbackIdParms": Model(_J + "CallbackIdParms.java", {"id": _f("UUID", True)}),
    "CallInRequestsParms": Model(
        _J + "CallInRequestsParms.java",
        {
            "groupName": _f("String", True),
            "fromPhoneNumber": _f("String"),
            "userData": _f(MapOf("Object")),
            "callbackServiceId": _f("UUID"),
        },
    ),
    # data
    "CreateCallbackData": Model(_J + "CreateCallbackData.java", {"id": _f("UUID", True)}),
    "CancelCallbackData": Model(_J + "CancelCallbackData.java", {"id": _f("UUID")}),
    "Callback": Model(
        _J + "Callback.java",
        {
            "id": _f("UUID"),
            "desiredTime": _f("OffsetDateTime"),
            "callbackState": _f("String"),
            "callbackReason": _f("String"),
            "phoneNumber": _f("String"),
            "positionInQueue": _f("BigDecimal"),
            "estimatedWaitTime": _f("BigDecimal"),
        },
    ),
    # "proposed slots and capacities": HashData extends HashMap<String, String>.
    "ProposedSlots": Model(_J + "ProposedSlots.java", {"slots": _f(Ref("HashData"))}),
    "HashData": Model(_J + "HashData.java", values="String"),
    "Slot": Model(
        _J + "Slot.java",
        {
            "utcTime": _f("OffsetDateTime"),
            "localTime": _f("OffsetDateTime"),
            "capacity": _f("BigDecimal"),
            "total": _f("BigDecimal"),
        },
    ),
    "Availabilities": Model(
        _J + "Availabilities.java",
        {
            "slots": _f(ListOf(Ref("Slot"))),
            "durationMin": _f("BigDecimal"),
            "timezone": _f("String"),
        },
    ),
    "OpenForData": Model(_J + "OpenForData.java", {"openFor": _f("BigDecimal")}),
    "QueueStatus": Model(
        _J + "QueueStatus.java",
        {
            "ewt": _f("BigDecimal"),
            "offerImmediateCallback": _f("Boolean"),
            "offerScheduledCallback": _f("Boolean"),
        },
    ),
    # resultCode only in the Java SDK (added in the 19.016 generation; JS 19.015 lacks it).
    "EstimatedWaitTime": Model(
        _J + "EstimatedWaitTime.java",
        {
            "virtualQueue": _f("String", True),
            "estimatedWaitTime": _f("BigDecimal", True),
            "message": _f("String", True),
            "resultCode": _f("BigDecimal", True),
        },
    ),
    "EstimatedWaitTimes": Model(_J + "EstimatedWaitTimes.java", items=Ref("EstimatedWaitTime")),
    "CallInRequest": Model(
        _J + "CallInRequest.java",
        {
            "id": _f("UUID"),
            "toPhoneNumber": _f("String"),
            "groupName": _f("String"),
            "expirationTime": _f("BigDecimal"),
            "accessCode": _f("BigDecimal"),
            "fromPhoneNumber": _f("String"),
            "callbackServiceId": _f("UUID"),
        },
    ),
    # "The response from the GWS statistics API": a class without fields (any JSON object).
    "Statistics": Model(_J + "Statistics.java"),
    # envelopes
    "CreateCallbackResponse200": _java_envelope(
        "CreateCallbackResponse200", "SuccessStatus200", Ref("CreateCallbackData")
    ),
    "CreateCallbackResponse400": _java_envelope(
        "CreateCallbackResponse400", "CreateCallbackStatus400", None
    ),
    "CreateCallbackResponse429": _java_envelope(
        "CreateCallbackResponse429", "CreateCallbackStatus429", Ref("ProposedSlots")
    ),
    "CancelCallbackResponse200": _java_envelope(
        "CancelCallbackResponse200", "SuccessStatus200", Ref("CancelCallbackData")
    ),
    "CancelCallbackResponse400": _java_envelope(
        "CancelCallbackResponse400", "CancelCallbackStatus400", None
    ),
    "CancelCallbackResponse404": _java_envelope(
        "CancelCallbackResponse404", "CancelCallbackStatus404", None
    ),
    "GetCallbackResponse200": _java_envelope(
        "GetCallbackResponse200", "SuccessStatus200", Ref("Callback")
    ),
    "GetCallbackResponse400": _java_envelope(
        "GetCallbackResponse400", "GetCallbackStatus400", None
    ),
    "GetCallbackResponse404": _java_envelope(
        "GetCallbackResponse404", "GetCallbackStatus404", None
    ),
    "AvailabilitiesResponse200": _java_envelope(
        "AvailabilitiesResponse200", "SuccessStatus200", Ref("Availabilities")
    ),
    "AvailabilitiesResponse400": _java_envelope(
        "AvailabilitiesResponse400", "AvailabilitiesStatus400", None
    ),
    "OpenForResponse200": _java_envelope(
        "OpenForResponse200", "SuccessStatus200", Ref("OpenForData")
    ),
    "OpenForResponse400": _java_envelope("OpenForResponse400", "OpenForStatus400", None),
    "QueueStatusResponse200": _java_envelope(
        "QueueStatusResponse200", "SuccessStatus200", Ref("QueueStatus")
    ),
    "QueueStatusResponse400": _java_envelope("QueueStatusResponse400", "QueueStatus400", None),
    "EstimatedWaitTimeResponse200": _java_envelope(
        "EstimatedWaitTimeResponse200", "SuccessStatus200", Ref("EstimatedWaitTimes")
    ),
    "EstimatedWaitTimeResponse400": _java_envelope(
        "EstimatedWaitTimeResponse400", "EstimatedWaitTimeStatus400", None
    ),
    "CallInRequestsResponse200": _java_envelope(
        "CallInRequestsResponse200", "SuccessStatus200", Ref("CallInRequest")
    ),
    "CallInRequestsResponse400": _java_envelope(
        "CallInRequestsResponse400", "CallInRequestsStatus400", None
    ),
    "StatisticsResponse200": _java_envelope(
        "StatisticsResponse200", "SuccessStatus200", Ref("Statistics")
    ),
    "StatisticsResponse401": _java_envelope("StatisticsResponse401", "StatisticsStatus401", None),
}
for _status in (
    "SuccessStatus200",
    "CreateCallbackStatus400",
    "CreateCallbackStatus429",
    "CancelCallbackStatus400",
    "CancelCallbackStatus404",
    "GetCallbackStatus400",
    "GetCallbackStatus404",
    "AvailabilitiesStatus400",
    "OpenForStatus400",
    "QueueStatus400",
    "EstimatedWaitTimeStatus400",
    "CallInRequestsStatus400",
    "StatisticsStatus401",
):
    JAVA_MODELS[_status] = _java_status(_status)


# --- JavaScript (engagement-client-js, src/model/*.js) ----------------------------------------

_S = "engagement-client-js src/model/"


def _js_status(name: str) -> Model:
    # Every status model: code Number, message String, corrId String.
    return Model(
        _S + f"{name}.js", {"code": _f("Number"), "message": _f("String"), "corrId": _f("String")}
    )


def _js_envelope(name: str, status: str, data: Type | None) -> Model:
    fields = {"status": _f(Ref(status))}
    if data is not None:
        fields["data"] = _f(data)
    return Model(_S + f"{name}.js", fields)


JS_MODELS: dict[str, Model] = {
    # requests; "required" = the constructor's parameters.
    "CreateCallbackParms": Model(
        _S + "CreateCallbackParms.js",
        {
            "serviceName": _f("String", True),
            "phoneNumber": _f("String", True),
            "desiredTime": _f("Date"),
            "cbOfferType": _f("String"),
            "language": _f("String"),
            "inboundVQ": _f("String"),
            "offerThreshold": _f("Number"),
            "channel": _f("String"),
            "offerTiming": _f("String"),
            "cbOriginationIxnId": _f("String"),
            "surveyRP": _f("String"),
            "priority": _f("Number"),
            "routePoint": _f("String"),
            # typed String by the generator, documented (and sent by callers) as a hash map
            "userData": _f("Object"),
            "captchaToken": _f("String"),
            "pushTargets": _f(ListOf(Ref("PushTarget"))),
        },
    ),
    "PushTarget": Model(
        _S + "PushTarget.js", {"channel": _f("String", True), "target": _f("String", True)}
    ),
    "CallbackIdParms": Model(_S + "CallbackIdParms.js", {"id": _f("String", True)}),
    "CallInRequestsParms": Model(
        _S + "CallInRequestsParms.js",
        {
            "groupName": _f("String", True),
            "fromPhoneNumber": _f("String"),
            "userData": _f("Object"),
            "callbackServiceId": _f("String"),
        },
    ),
    # data
    "CreateCallbackData": Model(_S + "CreateCallbackData.js", {"id": _f("String")}),
    "CancelCallbackData": Model(_S + "CancelCallbackData.js", {"id": _f("String")}),
    "Callback": Model(
        _S + "Callback.js",
        {
            "id": _f("String"),
            "desiredTime": _f("Date"),
            "callbackState": _f("String"),
            "callbackReason": _f("String"),
            "phoneNumber": _f("String"),
            "positionInQueue": _f("Number"),
            "estimatedWaitTime": _f("Number"),
        },
    ),
    # HashData.constructFromObject converts every value with convertToType(v, 'String').
    "ProposedSlots": Model(_S + "ProposedSlots.js", {"slots": _f(Ref("HashData"))}),
    "HashData": Model(_S + "HashData.js", values="String"),
    "Slot": Model(
        _S + "Slot.js",
        {
            "utcTime": _f("Date"),
            "localTime": _f("Date"),
            "capacity": _f("Number"),
            "total": _f("Number"),
        },
    ),
    "Availabilities": Model(
        _S + "Availabilities.js",
        {
            "slots": _f(ListOf(Ref("Slot"))),
            "durationMin": _f("Number"),
            "timezone": _f("String"),
        },
    ),
    "OpenForData": Model(_S + "OpenForData.js", {"openFor": _f("Number")}),
    "QueueStatus": Model(
        _S + "QueueStatus.js",
        {
            "ewt": _f("Number"),
            "offerImmediateCallback": _f("Boolean"),
            "offerScheduledCallback": _f("Boolean"),
        },
    ),
    "EstimatedWaitTime": Model(
        _S + "EstimatedWaitTime.js",
        {
            "virtualQueue": _f("String", True),
            "estimatedWaitTime": _f("Number", True),
            "message": _f("String", True),
        },
    ),
    "EstimatedWaitTimes": Model(_S + "EstimatedWaitTimes.js", items=Ref("EstimatedWaitTime")),
    "CallInRequest": Model(
        _S + "CallInRequest.js",
        {
            "id": _f("String"),
            "toPhoneNumber": _f("String"),
            "groupName": _f("String"),
            "expirationTime": _f("Number"),
            "accessCode": _f("Number"),
            "fromPhoneNumber": _f("String"),
            "callbackServiceId": _f("String"),
        },
    ),
    "Statistics": Model(_S + "Statistics.js"),
    # envelopes
    "CreateCallbackResponse200": _js_envelope(
        "CreateCallbackResponse200", "SuccessStatus200", Ref("CreateCallbackData")
    ),
    "CreateCallbackResponse400": _js_envelope(
        "CreateCallbackResponse400", "CreateCallbackStatus400", None
    ),
    "CreateCallbackResponse429": _js_envelope(
        "CreateCallbackResponse429", "CreateCallbackStatus429", Ref("ProposedSlots")
    ),
    "CancelCallbackResponse200": _js_envelope(
        "CancelCallbackResponse200", "SuccessStatus200", Ref("CancelCallbackData")
    ),
    "CancelCallbackResponse400": _js_envelope(
        "CancelCallbackResponse400", "CancelCallbackStatus400", None
    ),
    "CancelCallbackResponse404": _js_envelope(
        "CancelCallbackResponse404", "CancelCallbackStatus404", None
    ),
    "GetCallbackResponse200": _js_envelope(
        "GetCallbackResponse200", "SuccessStatus200", Ref("Callback")
    ),
    "GetCallbackResponse400": _js_envelope("GetCallbackResponse400", "GetCallbackStatus400", None),
    "GetCallbackResponse404": _js_envelope("GetCallbackResponse404", "GetCallbackStatus404", None),
    "AvailabilitiesResponse200": _js_envelope(
        "AvailabilitiesResponse200", "SuccessStatus200", Ref("Availabilities")
    ),
    "AvailabilitiesResponse400": _js_envelope(
        "AvailabilitiesResponse400", "AvailabilitiesStatus400", None
    ),
    "OpenForResponse200": _js_envelope(
        "OpenForResponse200", "SuccessStatus200", Ref("OpenForData")
    ),
    "OpenForResponse400": _js_envelope("OpenForResponse400", "OpenForStatus400", None),
    "QueueStatusResponse200": _js_envelope(
        "QueueStatusResponse200", "SuccessStatus200", Ref("QueueStatus")
    ),
    "QueueStatusResponse400": _js_envelope("QueueStatusResponse400", "QueueStatus400", None),
    "EstimatedWaitTimeResponse200": _js_envelope(
        "EstimatedWaitTimeResponse200", "SuccessStatus200", Ref("EstimatedWaitTimes")
    ),
    "EstimatedWaitTimeResponse400": _js_envelope(
        "EstimatedWaitTimeResponse400", "EstimatedWaitTimeStatus400", None
    ),
    "CallInRequestsResponse200": _js_envelope(
        "CallInRequestsResponse200", "SuccessStatus200", Ref("CallInRequest")
    ),
    "CallInRequestsResponse400": _js_envelope(
        "CallInRequestsResponse400", "CallInRequestsStatus400", None
    ),
    "StatisticsResponse200": _js_envelope(
        "StatisticsResponse200", "SuccessStatus200", Ref("Statistics")
    ),
    "StatisticsResponse401": _js_envelope("StatisticsResponse401", "StatisticsStatus401", None),
}
for _status in (
    "SuccessStatus200",
    "CreateCallbackStatus400",
    "CreateCallbackStatus429",
    "CancelCallbackStatus400",
    "CancelCallbackStatus404",
    "GetCallbackStatus400",
    "GetCallbackStatus404",
    "AvailabilitiesStatus400",
    "OpenForStatus400",
    "QueueStatus400",
    "EstimatedWaitTimeStatus400",
    "CallInRequestsStatus400",
    "StatisticsStatus401",
):
    JS_MODELS[_status] = _js_status(_status)


# --- operations (api/*.java, src/api/*.js): the same paths and methods in both SDKs ------------


@dataclass(frozen=True)
class Operation:
    """One SDK call: method, path under ``/engagement/v3``, body model, query, answers."""

    key: str
    java: str
    js: str
    method: str
    path: str
    body: str | None
    query: tuple[str, ...]
    headers: tuple[str, ...]
    responses: dict[int, str]
    source: str


OPERATIONS: dict[str, Operation] = {
    op.key: op
    for op in (
        Operation(
            "create",
            "CallbacksApi.bookCallbackExternal",
            "CallbacksApi.bookCallbackExternal",
            "POST",
            "/callbacks/create",
            "CreateCallbackParms",
            (),
            ("x-api-key",),
            {
                200: "CreateCallbackResponse200",
                400: "CreateCallbackResponse400",
                429: "CreateCallbackResponse429",
            },
            "CallbacksApi",
        ),
        Operation(
            "cancel",
            "CallbacksApi.cancelCallback",
            "CallbacksApi.cancelCallback",
            "POST",
            "/callbacks/cancel",
            "CallbackIdParms",
            (),
            ("x-api-key",),
            {
                200: "CancelCallbackResponse200",
                400: "CancelCallbackResponse400",
                404: "CancelCallbackResponse404",
            },
            "CallbacksApi",
        ),
        Operation(
            "retrieve",
            "CallbacksApi.queryCallbackById",
            "CallbacksApi.queryCallbackById",
            "POST",
            "/callbacks/retrieve",
            "CallbackIdParms",
            (),
            ("x-api-key",),
            {
                200: "GetCallbackResponse200",
                400: "GetCallbackResponse400",
                404: "GetCallbackResponse404",
            },
            "CallbacksApi",
        ),
        Operation(
            "availability",
            "AvailabilityApi.queryAvailabilityV2",
            "AvailabilityApi.queryAvailabilityV2",
            "GET",
            "/callbacks/availability/{service-name}",
            None,
            (
                "start",
                "startMS",
                "numberOfDays",
                "end",
                "endMS",
                "timezone",
                "maxTimeSlots",
                "reportBusy",
            ),
            ("x-api-key",),
            {200: "AvailabilitiesResponse200", 400: "AvailabilitiesResponse400"},
            "AvailabilityApi",
        ),
        Operation(
            "open-for",
            "AvailabilityApi.openFor",
            "AvailabilityApi.openFor",
            "GET",
            "/callbacks/open-for/{service-name}",
            None,
            ("start", "timezone"),
            ("x-api-key",),
            {200: "OpenForResponse200", 400: "OpenForResponse400"},
            "AvailabilityApi",
        ),
        Operation(
            "queue-status",
            "QueueStatusApi.queryQueueStatus",
            "QueueStatusApi.queryQueueStatus",
            "GET",
            "/callbacks/queue-status/{queue-name}",
            None,
            (),
            ("x-api-key",),
            {200: "QueueStatusResponse200", 400: "QueueStatusResponse400"},
            "QueueStatusApi",
        ),
        Operation(
            "estimated-wait-time",
            "EstimatedWaitTimeApi.estimatedWaitTimeAPI1",
            "EstimatedWaitTimeApi.estimatedWaitTimeAPI1",
            "GET",
            "/estimated-wait-time",
            None,
            ("virtual-queues", "mode"),
            ("x-api-key",),
            {200: "EstimatedWaitTimeResponse200", 400: "EstimatedWaitTimeResponse400"},
            "EstimatedWaitTimeApi",
        ),
        Operation(
            "call-in-create",
            "CallInApi",
            "CallInApi",
            "POST",
            "/call-in/requests/create",
            "CallInRequestsParms",
            (),
            ("x-api-key",),
            {200: "CallInRequestsResponse200", 400: "CallInRequestsResponse400"},
            "CallInApi",
        ),
        Operation(
            "statistics",
            "StatisticsApi.statistics",
            "StatisticsApi.statistics",
            "POST",
            "/statistics/operations/get-statistic-ex",
            None,  # no body model: the SDKs POST without one
            (),
            ("x-api-key", "cache-control"),
            {200: "StatisticsResponse200", 401: "StatisticsResponse401"},
            "StatisticsApi",
        ),
    )
}
"""Every operation of both SDKs (captcha/verify and notification/publish left the SDKs after
9.0.18 and are not GES callback operations dialback serves)."""


# --- what each SDK puts on the wire -----------------------------------------------------------

JAVA_FIELD_DEFAULTS: dict[str, dict[str, Any]] = {
    # Java field initialisers; Gson serialises every non-null field, so these are always sent.
    "CreateCallbackParms": {"cbOfferType": CB_OFFER_TYPE_DEFAULT, "language": LANGUAGE_DEFAULT},
}
JS_PROTOTYPE_DEFAULTS: dict[str, dict[str, Any]] = {
    # The JS defaults live on the prototype: JSON.stringify serialises own properties only, so
    # they are NOT sent. A caller who copies them onto the object (or builds a plain object from
    # the documented defaults, as the tutorial's constants do) sends them: see js_body().
    "CreateCallbackParms": {"cbOfferType": CB_OFFER_TYPE_DEFAULT, "language": LANGUAGE_DEFAULT},
}


def java_body(model: str, **fields: Any) -> dict[str, Any]:
    """The JSON the Java SDK sends for ``model`` with ``fields`` set (Gson: nulls omitted)."""
    body = {**JAVA_FIELD_DEFAULTS.get(model, {}), **fields}
    return {k: _java_json(v) for k, v in body.items() if v is not None}


def js_body(model: str, *, with_documented_defaults: bool = False, **fields: Any) -> dict[str, Any]:
    """The JSON the JS SDK sends: the constructor's arguments and what the caller set.

    ``with_documented_defaults``: the caller also set the model's documented defaults as own
    properties (what a plain-object body written from docs/CreateCallbackParms.md carries).
    """
    base = JS_PROTOTYPE_DEFAULTS.get(model, {}) if with_documented_defaults else {}
    body = {**base, **fields}
    return {k: _js_json(v) for k, v in body.items() if v is not None}


def java_datetime(t: datetime) -> str:
    """``OffsetDateTime`` through ``ISO_OFFSET_DATE_TIME``: seconds always, the fraction only
    when non-zero and without trailing zeros, ``Z`` for a zero offset, else ``+HH:MM``."""
    if t.tzinfo is None:
        raise ValueError("an OffsetDateTime always has an offset")
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        base += "." + f"{t.microsecond:06d}".rstrip("0")
    off = t.utcoffset()
    assert off is not None
    if not off:
        return base + "Z"
    minutes = int(off.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{base}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def js_datetime(t: datetime) -> str:
    """``Date.prototype.toJSON``: always UTC, always milliseconds, ``Z``."""
    u = t.astimezone(UTC)
    return u.strftime("%Y-%m-%dT%H:%M:%S.") + f"{u.microsecond // 1000:03d}Z"


def java_query(value: Any) -> str:
    """``ApiClient.parameterToString``: dates as in the body, others ``String.valueOf``."""
    if isinstance(value, datetime):
        return java_datetime(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def js_query(value: Any) -> str:
    """``ApiClient.paramToString``: a Date via ``toJSON()``, others ``toString()``."""
    if isinstance(value, datetime):
        return js_datetime(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _java_json(v: Any) -> Any:
    if isinstance(v, datetime):
        return java_datetime(v)
    if isinstance(v, dict):
        return {k: _java_json(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_java_json(x) for x in v]
    return v


def _js_json(v: Any) -> Any:
    if isinstance(v, datetime):
        return js_datetime(v)
    if isinstance(v, dict):
        return {k: _js_json(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_js_json(x) for x in v]
    return v


JAVA_HEADERS = {"content-type": "application/json", "accept": "application/json"}
"""Java sets both on every call, GETs included; a POST without a body model sends an empty
body (okhttp ``RequestBody.create(json, "")``)."""
JS_HEADERS = {"content-type": "application/json", "accept": "application/json"}
"""superagent ``type('application/json')`` and ``accept(...)`` on every call, GETs included."""


@dataclass(frozen=True)
class Sdk:
    name: str
    models: dict[str, Model]
    headers: dict[str, str]


JAVA = Sdk("java", JAVA_MODELS, JAVA_HEADERS)
JS = Sdk("js", JS_MODELS, JS_HEADERS)
SDKS = (JAVA, JS)
