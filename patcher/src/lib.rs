//! The offline patcher (issue 4): plans and applies package upgrades on a qcow2 overlay. Not built yet.
