//! The frame every console page shares (header, navigation, style, security headers), and
//! the error page a person in a browser sees.

use actix_web::HttpResponse;
use maud::{html, Markup, PreEscaped, DOCTYPE};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222}
header{background:#1f3a5f;color:#fff;padding:.6em 1em;display:flex;gap:1.2em;align-items:center}
header a{color:#fff;text-decoration:none}header form{margin-left:auto}
main{padding:1em 1.5em}table{border-collapse:collapse;margin:.5em 0}
td,th{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:left;font-size:14px}
.sev-critical{color:#8b0000;font-weight:bold}.sev-high{color:#d9480f}.cards{display:flex;gap:1em;flex-wrap:wrap}
.card{border:1px solid #ccc;border-radius:6px;padding:.6em 1em;min-width:10em}.card b{font-size:1.6em;display:block}
.err{color:#a00}code{font-size:13px}#events li,.image-log li{font-family:monospace;font-size:13px}
.overview{display:flex;gap:3em;flex-wrap:wrap}.label{background:#e7eef7;border-radius:3px;padding:0 .3em;font-size:12px}
progress#bar{width:24em;height:1.2em}.stage-committed{color:#2b8a3e}.stage-failed{color:#a00;font-weight:bold}
.pager{margin:.5em 0}th a.sort{color:inherit}";

/// Scripts only from the server's own files, never inline; inline styles stay (the
/// pages' one style block and the charts' SVG attributes).
pub const CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Who a page is shown to, for the header: name, role and the session's CSRF value for
/// the log-out form.
pub struct Viewer<'a> {
    pub name: &'a str,
    pub role: &'a str,
    pub csrf: &'a str,
}

pub fn page(title: &str, who: Option<Viewer<'_>>, body: Markup) -> HttpResponse {
    let m = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · coldpatch" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    strong { "coldpatch" }
                    @if let Some(c) = who {
                        a href="/" { "Fleet" }
                        a href="/runs" { "Runs" }
                        a href="/workers" { "Workers" }
                        a href="/schedules" { "Schedules" }
                        a href="/shared" { "Shared content" }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(c.csrf);
                            span { (c.name) " (" (c.role) ") " }
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    };
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("content-security-policy", CSP))
        .insert_header(("x-content-type-options", "nosniff"))
        .body(m.into_string())
}

/// What a person in a browser sees when a page fails: what went wrong and a way back.
pub fn error_page(status: actix_web::http::StatusCode, message: &str) -> HttpResponse {
    let title = status.canonical_reason().unwrap_or("Error");
    let mut res = page(
        title,
        None,
        html! {
            p.err { (message) }
            p { a href="/" { "Back to the fleet" } " · " a href="/login" { "Log in" } }
        },
    );
    *res.status_mut() = status;
    res
}
