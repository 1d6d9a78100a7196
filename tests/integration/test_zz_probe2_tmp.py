from tests.conftest import Stack

async def test_probe(stack: Stack) -> None:
    key = await stack.tenant()
    paths = [
        ("GET", "/admin/v1/tenants/%00"), ("GET", "/admin/v1/tenants/acme%00"),
        ("GET", "/admin/v1/tenants/acme/services/%00"), ("DELETE", "/admin/v1/tenants/acme/api-keys/%00"),
        ("GET", "/admin/v1/callbacks/%00"), ("POST", "/admin/v1/callbacks/%00/cancel"),
        ("GET", "/admin/v1/callbacks?tenant=%00"), ("GET", "/admin/v1/callbacks?serviceName=%00"),
        ("GET", "/admin/v1/callbacks?phoneNumber=%00"), ("GET", "/admin/v1/callbacks?cursor=%00"),
        ("GET", "/admin/v1/tenants/acme/callin-groups/%00"), ("GET", "/admin/v1/call-in/requests?tenant=%00"),
        ("PUT", "/admin/v1/tenants/acme/services/sa%00"), ("DELETE", "/admin/v1/tenants/acme/callin-groups/%00"),
        ("GET", "/admin/v1/callbacks?after=%00"),
    ]
    for m, p in paths:
        r = await stack.internal.request(m, p, json={})
        print(r.status_code, m, p, r.text[:200])
    for m, p, body in [
        ("POST", "/admin/v1/tenants", {"name": "a\u0000"}),
        ("POST", "/admin/v1/tenants", {"name": "ok", "settings": {"x": "\u0000"}}),
        ("PATCH", "/admin/v1/tenants/acme", {"settings": {"throttle": {"maxCallbacks": "\u0000"}}}),
        ("POST", "/admin/v1/tenants/acme/api-keys", {"name": "k\u0000"}),
        ("POST", "/admin/v1/tenants/acme/api-keys", {"name": "k"}),
        ("POST", "/admin/v1/call-in/match", {"toPhoneNumber": "+1\u0000"}),
        ("PUT", "/admin/v1/tenants/acme/services/s2", {"businessHours": {"timezone": "\u0000"}}),
        ("PUT", "/admin/v1/tenants/acme/services/s2", {"validation": {"blockedPatterns": ["\u0000"]}}),
        ("PUT", "/admin/v1/tenants/acme/services/s2", {"validation": {"blockedPatterns": ["("]}}),
        ("PUT", "/admin/v1/tenants/acme/callin-groups/g", {"numbers": ["+14155550123\u0000"]}),
    ]:
        r = await stack.internal.request(m, p, json=body)
        print(r.status_code, m, p, r.text[:200])
    print(stack.rt.events.counts)
