//! The OpenAPI 3.0 document of `/api/v1`, written from a route table (the API's
//! `ROUTES`, which registers the handlers too): every route that is registered is
//! documented, and nothing else is. Bodies and answers are described loosely (JSON objects); the paths, methods,
//! parameters, roles and error shape are exact.

use serde_json::{json, Map, Value};

use coldpatch_catalog::Role;

/// One documented route.
#[derive(Debug, Clone, Copy)]
pub struct RouteDoc {
    pub method: &'static str,
    /// Relative to `/api/v1`.
    pub path: &'static str,
    /// `None`: no authentication (the health check only).
    pub role: Option<Role>,
    pub summary: &'static str,
    pub query: &'static [&'static str],
    /// A JSON (or, for feeds, file) request body.
    pub body: bool,
}

pub fn document(routes: &[RouteDoc]) -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for r in routes {
        let mut params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        params.extend(r.query.iter().map(|q| {
            let ty = match *q {
                "limit" | "offset" => json!({"type": "integer", "minimum": 0}),
                "vulnerable" | "fixable" => json!({"type": "boolean"}),
                _ => json!({"type": "string"}),
            };
            json!({"name": q, "in": "query", "required": false, "schema": ty})
        }));
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{}{}", r.method, r.path.replace(['/', '{', '}', '.'], "_")),
            "parameters": params,
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}},
                "400": {"$ref": "#/components/responses/Error"},
                "401": {"$ref": "#/components/responses/Error"},
                "403": {"$ref": "#/components/responses/Error"},
                "404": {"$ref": "#/components/responses/Error"}
            },
            "x-role": r.role.map_or("none", |x| x.as_str()),
        });
        if r.role.is_none() {
            op["security"] = json!([]);
        }
        if r.body {
            op["requestBody"] = if r.path == "/feeds" {
                json!({"required": true, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}})
            } else {
                json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}})
            };
        }
        paths
            .entry(r.path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|m| m.insert(r.method.to_string(), op));
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "coldpatch", "version": env!("CARGO_PKG_VERSION")},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": crate::auth::COOKIE}
            },
            "responses": {
                "Error": {
                    "description": "What was wrong",
                    "content": {"application/json": {"schema": {
                        "type": "object", "required": ["error"],
                        "properties": {"error": {"type": "string"}}
                    }}}
                }
            }
        }
    })
}
