//! The OpenAPI 3 document of the admin API, generated from the route table at start.

use super::reply::set;
use super::routes::ROUTES;
use serde_json::{json, Map, Value};

fn schemas() -> Value {
    let session = json!({
        "type": "object",
        "required": ["id", "user", "roles", "method", "mfa", "created_at", "last_seen_at", "expires_at"],
        "properties": {
            "id": {"type": "string", "description": "public session id (X-Auth-Session)"},
            "user": {"type": "string"},
            "roles": {"type": "array", "items": {"type": "string"}},
            "method": {"type": "string", "example": "native"},
            "idp": {"type": "string", "nullable": true},
            "mfa": {"type": "string", "example": "totp"},
            "created_at": {"type": "string", "format": "date-time"},
            "last_seen_at": {"type": "string", "format": "date-time"},
            "expires_at": {"type": "string", "format": "date-time"},
            "ip": {"type": "string", "nullable": true},
            "user_agent": {"type": "string", "nullable": true}
        }
    });
    let user = json!({
        "type": "object",
        "required": ["username", "roles", "disabled", "created_at"],
        "properties": {
            "username": {"type": "string"},
            "email": {"type": "string", "nullable": true},
            "roles": {"type": "array", "items": {"type": "string"}},
            "disabled": {"type": "boolean"},
            "created_at": {"type": "string", "format": "date-time"},
            "totp": {"type": "boolean", "description": "a confirmed TOTP factor exists"},
            "recovery_codes_left": {"type": "integer"}
        }
    });
    let page = |item: &str| {
        json!({
            "type": "object",
            "required": ["items", "next"],
            "properties": {
                "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}},
                "next": {"type": "string", "nullable": true}
            }
        })
    };
    json!({
        "Error": {"type": "object", "required": ["error", "detail"], "properties": {"error": {"type": "string"}, "detail": {"type": "string"}}},
        "Status": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}, "checks": {"type": "object"}}},
        "Session": session,
        "SessionPage": page("Session"),
        "User": user,
        "UserPage": page("User"),
        "NewUser": {"type": "object", "required": ["username", "roles"], "additionalProperties": false, "properties": {
            "username": {"type": "string"}, "password": {"type": "string"}, "email": {"type": "string"},
            "roles": {"type": "array", "items": {"type": "string"}}}},
        "CreatedUser": {"type": "object", "required": ["user"], "properties": {"user": {"$ref": "#/components/schemas/User"}, "password": {"type": "string", "description": "only when generated"}}},
        "Terminated": {"type": "object", "required": ["terminated"], "properties": {"terminated": {"type": "integer"}, "devices_forgotten": {"type": "integer"}}},
        "BreakGlassRequest": {"type": "object", "required": ["users", "duration", "reason"], "additionalProperties": false, "properties": {
            "users": {"type": "array", "items": {"type": "string"}}, "duration": {"type": "string", "example": "2h"},
            "reason": {"type": "string"}, "roles": {"type": "array", "items": {"type": "string"}}}},
        "BreakGlassLinks": {"type": "object", "required": ["links"], "properties": {"links": {"type": "array", "items": {"type": "object", "properties": {
            "user": {"type": "string"}, "url": {"type": "string"}, "until": {"type": "string", "format": "date-time"}}}}}},
        "BreakGlassStatus": {"type": "object", "required": ["armed", "users"], "properties": {"armed": {"type": "boolean"}, "users": {"type": "array", "items": {"type": "object"}}}},
        "BreakGlassDisarmed": {"type": "object", "required": ["users", "sessions_ended"], "properties": {"users": {"type": "array", "items": {"type": "string"}}, "sessions_ended": {"type": "integer"}}},
        "RecoveryCodeRequest": {"type": "object", "additionalProperties": false, "properties": {"ttl": {"type": "string", "example": "30d"}}},
        "RecoveryCodes": {"type": "object", "required": ["codes"], "properties": {"codes": {"type": "array", "items": {"type": "string"}}, "expires_at": {"type": "string", "format": "date-time", "nullable": true}}},
        "AuditEvent": {"type": "object", "required": ["id", "at", "type", "outcome"], "properties": {
            "id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"}, "type": {"type": "string"},
            "user": {"type": "string", "nullable": true}, "method": {"type": "string", "nullable": true},
            "outcome": {"type": "string"}, "reason": {"type": "string", "nullable": true},
            "ip": {"type": "string", "nullable": true}, "session": {"type": "string", "nullable": true},
            "detail": {"type": "string", "nullable": true}}},
        "AuditPage": page("AuditEvent")
    })
}

/// The document, built from `ROUTES`.
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let mut params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        params.extend(r.query.iter().map(|(name, ty, desc)| {
            json!({"name": name, "in": "query", "required": false, "description": desc, "schema": {"type": ty}})
        }));
        let mut responses = Map::new();
        for (code, desc, schema) in r.responses {
            let mut resp = json!({"description": desc});
            if !schema.is_empty() {
                set(
                    &mut resp,
                    "content",
                    json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}),
                );
            }
            responses.insert(code.to_string(), resp);
        }
        let mut op = json!({
            "operationId": format!("{:?}", r.op),
            "summary": r.summary,
            "parameters": params,
            "responses": responses,
        });
        if !r.auth {
            set(&mut op, "security", json!([]));
        }
        if let Some(body) = r.body {
            set(
                &mut op,
                "requestBody",
                json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{body}")}}}}),
            );
        }
        let entry = paths.entry(r.path.to_owned()).or_insert_with(|| json!({}));
        set(entry, &r.method.to_ascii_lowercase(), op);
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "portcullis admin API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
        },
        "security": [{"bearer": []}]
    })
}
