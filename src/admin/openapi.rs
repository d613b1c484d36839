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
            "recovery_codes_left": {"type": "integer"},
            "passkeys": {
                "type": "array",
                "description": "the user's passkeys (no key material)",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "description": "credential id, base64url"},
                        "name": {"type": "string"},
                        "created_at": {"type": "string", "format": "date-time"},
                        "last_used_at": {"type": "string", "format": "date-time", "nullable": true}
                    }
                }
            }
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
        "PasswordRequest": {"type": "object", "additionalProperties": false, "description": "a password to set, or {} / {\"generate\": true} for a generated one", "properties": {
            "password": {"type": "string", "minLength": 8}, "generate": {"type": "boolean"}}},
        "PasswordSet": {"type": "object", "required": ["user", "sessions_ended"], "properties": {"user": {"$ref": "#/components/schemas/User"},
            "password": {"type": "string", "description": "only when generated; shown once"}, "sessions_ended": {"type": "integer"}}},
        "UserUpdate": {"type": "object", "additionalProperties": false, "minProperties": 1, "properties": {
            "roles": {"type": "array", "items": {"type": "string"}, "minItems": 1}, "email": {"type": "string", "nullable": true, "description": "null clears it"}}},
        "UpdatedUser": {"type": "object", "required": ["user", "sessions_ended"], "properties": {"user": {"$ref": "#/components/schemas/User"}, "sessions_ended": {"type": "integer", "description": "sessions that carried a role the user no longer has"}}},
        "DeletedUser": {"type": "object", "required": ["deleted", "sessions_ended"], "properties": {"deleted": {"type": "string"}, "sessions_ended": {"type": "integer"}}},
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
        "AuditPage": page("AuditEvent"),
        "Reloaded": {"type": "object", "required": ["status", "restart_required", "warnings"], "properties": {
            "status": {"type": "string", "enum": ["reloaded"]},
            "restart_required": {"type": "array", "items": {"type": "string"}, "description": "changed keys that need a restart; not applied"},
            "warnings": {"type": "array", "items": {"type": "string"}}}},
        "ReloadRefused": {"type": "object", "required": ["error", "detail", "errors"], "properties": {
            "error": {"type": "string"}, "detail": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "string"}, "description": "file:line: key: message, as `portcullis check` prints them"}}}
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
        let scope = super::auth::scope_of(r).as_str();
        if r.auth {
            // Before the operation is built from `responses`: inserted after, it would be lost.
            responses.insert(
                "403".into(),
                json!({"description": format!("the token lacks the `{scope}` scope"), "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
            );
        }
        // Every endpoint refuses a query parameter it does not list (`routes::check_query`).
        responses.entry("400").or_insert_with(|| {
            json!({"description": "an unknown or repeated query parameter, or an invalid value", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
        });
        let mut op = json!({
            "operationId": format!("{:?}", r.op),
            "summary": r.summary,
            "parameters": params,
            "responses": responses,
        });
        if r.auth {
            set(&mut op, "x-portcullis-scope", json!(scope));
        } else {
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
