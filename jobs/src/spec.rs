//! What a queued run is to do: its spec, stored with the run so a restart runs it still.

use coldpatch_catalog::PlanPolicy;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "job")]
pub enum JobSpec {
    /// Collect the images (again, when changed; always with `rescan`).
    Collect {
        images: Vec<String>,
        #[serde(default)]
        rescan: bool,
    },
    /// Patch the images from a repository directory.
    Patch {
        images: Vec<String>,
        #[serde(flatten)]
        policy: PlanPolicy,
        repo: String,
        /// Patch every image with the package tool, even those that could take the change
        /// set of an image with the same plan (`coldpatch_patcher::replay`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        no_replay: bool,
    },
}

impl JobSpec {
    /// The run kind it makes.
    pub fn kind(&self) -> &'static str {
        match self {
            JobSpec::Collect { .. } => "collect",
            JobSpec::Patch { .. } => "apply",
        }
    }

    /// The spec as a queued run stores it; refuses a job with no image.
    pub(crate) fn stored(&self) -> Result<serde_json::Value, crate::JobError> {
        if self.images().is_empty() {
            return Err(crate::JobError::NoImages);
        }
        serde_json::to_value(self).map_err(crate::JobError::Encode)
    }

    pub fn images(&self) -> &[String] {
        match self {
            JobSpec::Collect { images, .. } | JobSpec::Patch { images, .. } => images,
        }
    }
}

/// The patcher's request for a stored policy.
pub fn request(policy: &PlanPolicy) -> coldpatch_patcher::Request {
    match policy {
        PlanPolicy::AllFixable => coldpatch_patcher::Request {
            all_fixable: true,
            ..Default::default()
        },
        PlanPolicy::MinSeverity { severity } => coldpatch_patcher::Request {
            min_severity: Some(*severity),
            ..Default::default()
        },
        PlanPolicy::Cves { ids } => coldpatch_patcher::Request {
            advisories: ids.clone(),
            ..Default::default()
        },
    }
}
