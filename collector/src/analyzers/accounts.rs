//! Accounts that can log in without a password: an empty hash in /etc/shadow, or a
//! passwd entry that defers to shadow ("x") where shadow has no line for it.

use std::collections::BTreeMap;

use crate::analyzer::{Analyzer, Offer, PathPattern};
use crate::model::{Inventory, WeakAccount};

#[derive(Default)]
pub struct Accounts {
    /// name -> password field, from /etc/passwd
    passwd: Option<BTreeMap<String, String>>,
    /// name -> hash, from /etc/shadow
    shadow: Option<BTreeMap<String, String>>,
}

fn fields(data: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(data)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split(':');
            Some((f.next()?.to_string(), f.next()?.to_string()))
        })
        .collect()
}

impl Analyzer for Accounts {
    fn name(&self) -> &'static str {
        "accounts"
    }
    fn version(&self) -> u32 {
        1
    }
    fn patterns(&self) -> &'static [PathPattern] {
        &[
            PathPattern::Exact("/etc/passwd"),
            PathPattern::Exact("/etc/shadow"),
        ]
    }
    fn max_bytes(&self) -> u64 {
        16 << 20
    }
    fn analyze(&mut self, offer: &Offer<'_>, _inv: &mut Inventory) -> Result<(), String> {
        let Some(data) = offer.data else {
            return Ok(());
        };
        if offer.path == "/etc/passwd" {
            self.passwd = Some(fields(data));
        } else {
            self.shadow = Some(fields(data));
        }
        Ok(())
    }
    fn finish(&mut self, inv: &mut Inventory) {
        let mut weak = Vec::new();
        if let Some(shadow) = &self.shadow {
            for (name, hash) in shadow {
                if hash.is_empty() {
                    weak.push(WeakAccount {
                        name: name.clone(),
                        problem: "empty".into(),
                    });
                }
            }
        }
        if let Some(passwd) = &self.passwd {
            for (name, pw) in passwd {
                if pw == "x" && !self.shadow.as_ref().is_some_and(|s| s.contains_key(name)) {
                    weak.push(WeakAccount {
                        name: name.clone(),
                        problem: "missing".into(),
                    });
                }
                if pw.is_empty() {
                    weak.push(WeakAccount {
                        name: name.clone(),
                        problem: "empty".into(),
                    });
                }
            }
        }
        weak.sort();
        weak.dedup();
        inv.security.weak_accounts = weak;
    }
}
