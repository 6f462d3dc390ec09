//! A run's events as server-sent events (`GET /api/v1/runs/{id}/events`): what the
//! console's run page and API clients follow live; an image's event also says the
//! stage it puts the image at (`stage`, see `coldpatch_catalog::progress`). Events are polled from the catalog,
//! where every event is written first, off the async threads. A stream checks its
//! caller's credential again every [`RECHECK`] and ends once the token is revoked or the
//! session is over.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use coldpatch_catalog::RunState;
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::service::blocking;
use crate::AppState;

type St = web::Data<AppState>;

/// How often a live stream checks that its caller may still read it.
pub const RECHECK: Duration = Duration::from_secs(3);

#[derive(Deserialize)]
pub struct EventsQ {
    skip: Option<usize>,
}

/// `GET /api/v1/runs/{id}/events`: the run's events as server-sent events (`data:` one
/// JSON event each), from `skip` on, live until the run's `finished` event.
pub async fn run_events(
    st: St,
    who: Caller,
    id: web::Path<String>,
    q: web::Query<EventsQ>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    {
        let (st, id) = (st.clone(), id.clone());
        blocking(move || Ok(st.catalog.run(&id)?)).await?;
    }
    let start = q.skip.unwrap_or(0);
    // State: (events sent so far, finished). Polls the catalog, where every event is
    // written first; a comment line after ~15 s of quiet keeps proxies from closing it.
    let credential = who.credential;
    let checked = std::sync::Arc::new(std::sync::Mutex::new(std::time::Instant::now()));
    let stream = futures_util::stream::unfold((start, false), move |(sent, done)| {
        let st = st.clone();
        let id = id.clone();
        let credential = credential.clone();
        let checked = checked.clone();
        async move {
            if done {
                return None;
            }
            for tick in 0.. {
                if tick > 0 {
                    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
                }
                let due = {
                    let mut at = checked.lock().unwrap_or_else(|p| p.into_inner());
                    let due = at.elapsed() >= RECHECK;
                    if due {
                        *at = std::time::Instant::now();
                    }
                    due
                };
                if due {
                    let (st2, c2) = (st.clone(), credential.clone());
                    let valid = blocking(move || Ok(c2.still_valid(&st2)))
                        .await
                        .unwrap_or(false);
                    if !valid {
                        return None;
                    }
                }
                let (st2, id2) = (st.clone(), id.clone());
                // A store error ends the stream; the client sees it end and can reload.
                let Ok(events) = blocking(move || Ok(st2.catalog.events(&id2)?)).await else {
                    return None;
                };
                if events.len() > sent {
                    let mut out = String::new();
                    let mut finished = false;
                    for e in &events[sent..] {
                        out.push_str("data: ");
                        // Each event carries the stage it puts its image at, for the
                        // run page's progress bar (`coldpatch_catalog::progress`).
                        let Ok(mut v) = serde_json::to_value(e) else {
                            return None;
                        };
                        if let (Some(s), Some(_)) =
                            (coldpatch_catalog::progress::stage(&e.kind), &e.image)
                        {
                            v["stage"] = serde_json::json!(s.as_str());
                        }
                        let json = v.to_string();
                        out.push_str(&json);
                        out.push_str("\n\n");
                        finished |= e.kind == "finished" && e.image.is_none();
                    }
                    let next = (events.len(), finished);
                    return Some((Ok::<_, actix_web::Error>(web::Bytes::from(out)), next));
                }
                let (st2, id2) = (st.clone(), id.clone());
                let ended = blocking(move || Ok(st2.catalog.run(&id2)?))
                    .await
                    .map(|r| !matches!(r.state, RunState::Queued | RunState::Running))
                    .unwrap_or(true);
                if ended {
                    return None;
                }
                if tick >= 50 {
                    return Some((Ok(web::Bytes::from_static(b": waiting\n\n")), (sent, false)));
                }
            }
            None
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .streaming(stream))
}
