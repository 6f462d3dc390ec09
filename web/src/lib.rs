//! Web console and REST API (issue 5). Not built yet.
