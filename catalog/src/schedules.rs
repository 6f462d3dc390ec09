//! Schedules: what the server's scheduler queues, and when, stored by id. The cron expression is only stored here; the scheduler (web crate) reads it.
//! `last_fired` is written when the scheduler queues a run, so a restart knows which
//! times were already served.

use serde::{Deserialize, Serialize};

use crate::error::{CatalogError, Result};
use crate::store::Catalog;

/// Which findings a scheduled patch fixes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "policy")]
pub enum PlanPolicy {
    /// Every finding that has a fix.
    AllFixable,
    /// Findings of this severity or worse that have a fix.
    MinSeverity { severity: coldpatch_vuln::Severity },
    /// These advisories or CVEs.
    Cves { ids: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Action {
    /// Collect the images again (when they changed) and match them against the feeds.
    Collect,
    /// Patch the images from a repository.
    Patch { policy: PlanPolicy, repo: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub id: String,
    pub name: String,
    /// Five fields (minute hour day month weekday), UTC.
    pub cron: String,
    /// Image paths; empty: every image in the catalog when it fires.
    pub images: Vec<String>,
    /// Of those, only the images this label selector picks when it fires (`labels.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    pub action: Action,
    pub enabled: bool,
    pub created: u64,
    /// The time (seconds) of the last occasion the scheduler served.
    pub last_fired: Option<u64>,
    /// The run it last queued.
    pub last_run: Option<String>,
}

impl Catalog {
    /// Stores a schedule (new or changed).
    pub fn put_schedule(&self, s: &Schedule) -> Result<()> {
        self.db().put_schedule(s)
    }

    /// Writes `s` only if the stored schedule is still `was`: of several servers sharing
    /// a catalog, the one whose write goes through fires an occasion. Whether it did.
    pub fn replace_schedule(&self, s: &Schedule, was: &Schedule) -> Result<bool> {
        self.db().replace_schedule(s, was)
    }

    /// A new schedule's id.
    pub fn new_schedule_id(&self) -> Result<String> {
        Ok(format!("s{}", self.next_id("schedule")?))
    }

    pub fn schedule(&self, id: &str) -> Result<Schedule> {
        self.db()
            .schedule(id)?
            .ok_or_else(|| CatalogError::NoSchedule(id.to_string()))
    }

    pub fn schedules(&self) -> Result<Vec<Schedule>> {
        self.db().schedules()
    }

    pub fn delete_schedule(&self, id: &str) -> Result<()> {
        if self.db().remove_schedule(id)? {
            Ok(())
        } else {
            Err(CatalogError::NoSchedule(id.to_string()))
        }
    }
}
