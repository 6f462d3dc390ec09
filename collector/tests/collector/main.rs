//! Collector tests on real package databases from other projects (read from
//! ../shared/testdata/peers, never copied here) and on the real images built by images/.

mod declarations;
mod facts;
mod fastpath;
mod images;
mod peers_apk;
mod peers_dpkg;
mod peers_rpm;
use coldpatch_testkit as util;
