//! Version ordering exactly as each package manager orders versions: dpkg (epoch,
//! upstream, revision with `~`), rpm (rpmvercmp with `~` and `^`, epoch:version-release)
//! and apk (apk-tools' token rules).
//!
//! Written here: the crates that exist each cover one ecosystem with different edge cases;
//! these three short functions are checked against the vectors of dpkg, rpm, apk-tools and
//! their ports (../shared/testdata/peers/vercmp) and differentially against the real tools.

use std::cmp::Ordering;

use coldpatch_collector::PackageKind;

/// Compares two versions of the given ecosystem.
pub fn compare(kind: PackageKind, a: &str, b: &str) -> Ordering {
    match kind {
        PackageKind::Deb => dpkg_compare(a, b),
        PackageKind::Rpm => rpm_evr_compare(a, b),
        PackageKind::Apk => apk_compare(a, b),
    }
}

// ---- dpkg ------------------------------------------------------------------------------

fn dpkg_split(v: &str) -> (u64, &str, &str) {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) if !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit()) => {
            (e.parse().unwrap_or(u64::MAX), r)
        }
        _ => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((u, r)) => (epoch, u, r),
        None => (epoch, rest, ""),
    }
}

fn dpkg_order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's verrevcmp (lib/dpkg/version.c).
fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let mut first_diff = 0;
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = dpkg_order(a.get(i).copied().filter(|c| !c.is_ascii_digit()));
            let bc = dpkg_order(b.get(j).copied().filter(|c| !c.is_ascii_digit()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            if i < a.len() && !a[i].is_ascii_digit() {
                i += 1;
            }
            if j < b.len() && !b[j].is_ascii_digit() {
                j += 1;
            }
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        while i < a.len() && a[i].is_ascii_digit() && j < b.len() && b[j].is_ascii_digit() {
            if first_diff == 0 {
                first_diff = i32::from(a[i]) - i32::from(b[j]);
            }
            i += 1;
            j += 1;
        }
        if i < a.len() && a[i].is_ascii_digit() {
            return Ordering::Greater;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            return Ordering::Less;
        }
        if first_diff != 0 {
            return first_diff.cmp(&0);
        }
    }
    Ordering::Equal
}

pub fn dpkg_compare(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = dpkg_split(a.trim());
    let (eb, ub, rb) = dpkg_split(b.trim());
    ea.cmp(&eb)
        .then_with(|| verrevcmp(ua, ub))
        .then_with(|| verrevcmp(ra, rb))
}

// ---- rpm -------------------------------------------------------------------------------

/// rpm's rpmvercmp (rpmio/rpmvercmp.c), including `~` (sorts before) and `^` (sorts after
/// the base but before the next segment).
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    loop {
        while i < a.len() && sep(a[i]) {
            i += 1;
        }
        while j < b.len() && sep(b[j]) {
            j += 1;
        }
        let (at, bt) = (a.get(i).copied(), b.get(j).copied());
        if at == Some(b'~') || bt == Some(b'~') {
            if at != Some(b'~') {
                return Ordering::Greater;
            }
            if bt != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if at == Some(b'^') || bt == Some(b'^') {
            if at.is_none() {
                return Ordering::Less;
            }
            if bt.is_none() {
                return Ordering::Greater;
            }
            if at != Some(b'^') {
                return Ordering::Greater;
            }
            if bt != Some(b'^') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if i >= a.len() || j >= b.len() {
            break;
        }
        let numeric = a[i].is_ascii_digit();
        let take = |s: &[u8], mut k: usize| {
            let start = k;
            while k < s.len()
                && if numeric {
                    s[k].is_ascii_digit()
                } else {
                    s[k].is_ascii_alphabetic()
                }
            {
                k += 1;
            }
            (start, k)
        };
        let (sa, ea) = take(a, i);
        let (sb, eb) = take(b, j);
        if sb == eb {
            // Segments of different kinds: a number is newer than letters.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let (mut x, mut y) = (&a[sa..ea], &b[sb..eb]);
        if numeric {
            while x.first() == Some(&b'0') {
                x = &x[1..];
            }
            while y.first() == Some(&b'0') {
                y = &y[1..];
            }
            match x.len().cmp(&y.len()) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        match x.cmp(y) {
            Ordering::Equal => {}
            o => return o,
        }
        i = ea;
        j = eb;
    }
    match (i >= a.len(), j >= b.len()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

/// Splits `[epoch:]version[-release]`.
pub fn rpm_split(evr: &str) -> (u64, &str, Option<&str>) {
    let (epoch, rest) = match evr.split_once(':') {
        Some((e, r)) if e.bytes().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(0), r),
        _ => (0, evr),
    };
    match rest.rsplit_once('-') {
        Some((v, r)) => (epoch, v, Some(r)),
        None => (epoch, rest, None),
    }
}

/// Compares `[epoch:]version[-release]`; a missing epoch is 0, and a missing release on
/// either side compares equal on release (as rpm does when matching dependencies).
pub fn rpm_evr_compare(a: &str, b: &str) -> Ordering {
    let (ea, va, ra) = rpm_split(a);
    let (eb, vb, rb) = rpm_split(b);
    ea.cmp(&eb)
        .then_with(|| rpmvercmp(va, vb))
        .then_with(|| match (ra, rb) {
            (Some(x), Some(y)) => rpmvercmp(x, y),
            _ => Ordering::Equal,
        })
}

// ---- apk -------------------------------------------------------------------------------
//
// apk-tools 3 token rules: digit runs (a run after '.' that starts with '0' compares as a
// string, like a decimal fraction), one lowercase letter, `_suffix[N]` (alpha, beta, pre,
// rc sort before the bare version; cvs, svn, git, hg, p after), `~commit` (compared as a
// string), `-rN` revision.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Tok {
    Invalid,
    DigitOrZero,
    Digit,
    Letter,
    Suffix,
    SuffixNo,
    CommitHash,
    RevisionNo,
    End,
}

const PRE: [&str; 4] = ["alpha", "beta", "pre", "rc"];
const POST: [&str; 5] = ["cvs", "svn", "git", "hg", "p"];

/// A token's value: a number, or bytes compared as a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Val<'a> {
    Num(i64),
    Str(&'a [u8]),
}

fn val_cmp(a: Val<'_>, b: Val<'_>) -> Ordering {
    match (a, b) {
        (Val::Num(x), Val::Num(y)) => x.cmp(&y),
        (Val::Str(x), Val::Str(y)) => x.cmp(y),
        // A leading-zero run against a plain number: compare their digits as strings.
        (Val::Str(x), Val::Num(y)) => x.cmp(y.to_string().as_bytes()),
        (Val::Num(x), Val::Str(y)) => x.to_string().as_bytes().cmp(y),
    }
}

fn next_token(t: &mut Tok, s: &mut &[u8]) {
    let mut n = Tok::Invalid;
    if s.is_empty() || s[0] == 0 {
        n = Tok::End;
    } else if matches!(*t, Tok::Digit | Tok::DigitOrZero) && s[0].is_ascii_lowercase() {
        n = Tok::Letter;
    } else if *t == Tok::Letter && s[0].is_ascii_digit() {
        n = Tok::Digit;
    } else if *t == Tok::Suffix && s[0].is_ascii_digit() {
        n = Tok::SuffixNo;
    } else {
        match s[0] {
            b'.' => n = Tok::DigitOrZero,
            b'_' => n = Tok::Suffix,
            b'~' => n = Tok::CommitHash,
            b'-' if s.len() > 1 && s[1] == b'r' => {
                n = Tok::RevisionNo;
                *s = &s[1..];
            }
            _ => {}
        }
        *s = &s[1..];
    }
    if n < *t
        && !((n == Tok::DigitOrZero && *t == Tok::Digit)
            || (n == Tok::Suffix && *t == Tok::SuffixNo)
            || (n == Tok::Digit && *t == Tok::Letter))
    {
        n = Tok::Invalid;
    }
    *t = n;
}

fn get_token<'a>(t: &mut Tok, s: &mut &'a [u8]) -> Val<'a> {
    if s.is_empty() {
        *t = Tok::End;
        return Val::Num(0);
    }
    let mut i = 0;
    let v = match *t {
        Tok::DigitOrZero | Tok::Digit | Tok::SuffixNo | Tok::RevisionNo => {
            while i < s.len() && s[i].is_ascii_digit() {
                i += 1;
            }
            let digits = &s[..i];
            if *t == Tok::DigitOrZero && digits.first() == Some(&b'0') {
                Val::Str(digits)
            } else {
                Val::Num(digits.iter().fold(0i64, |n, d| {
                    n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
                }))
            }
        }
        Tok::Letter => {
            i = 1;
            Val::Num(i64::from(s[0]))
        }
        Tok::CommitHash => {
            while i < s.len() && s[i].is_ascii_hexdigit() {
                i += 1;
            }
            Val::Str(&s[..i])
        }
        Tok::Suffix => {
            if let Some(k) = PRE.iter().position(|p| s.starts_with(p.as_bytes())) {
                i = PRE[k].len();
                Val::Num(k as i64 - PRE.len() as i64)
            } else if let Some(k) = POST.iter().position(|p| s.starts_with(p.as_bytes())) {
                i = POST[k].len();
                Val::Num(k as i64)
            } else {
                *t = Tok::Invalid;
                return Val::Num(-1);
            }
        }
        _ => {
            *t = Tok::Invalid;
            return Val::Num(-1);
        }
    };
    *s = &s[i..];
    if s.is_empty() {
        *t = Tok::End;
    } else {
        next_token(t, s);
    }
    v
}

/// Whether apk-tools accepts a version (apk_version_validate): `digits(.digits)*`, one
/// optional letter, `_suffix[digits]` with apk's suffix names, an optional `~hexhash`,
/// an optional `-rN`.
pub fn apk_valid(v: &str) -> bool {
    const SUFFIXES: [&str; 9] = ["alpha", "beta", "pre", "rc", "cvs", "svn", "git", "hg", "p"];
    let b = v.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let s = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > s
    };
    if !digits(&mut i) {
        return false;
    }
    while i < b.len() && b[i] == b'.' {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if i < b.len() && b[i].is_ascii_lowercase() {
        i += 1;
    }
    while i < b.len() && b[i] == b'_' {
        i += 1;
        let s = i;
        while i < b.len() && b[i].is_ascii_lowercase() {
            i += 1;
        }
        if !SUFFIXES.contains(&&v[s..i]) {
            return false;
        }
        digits(&mut i);
    }
    if i < b.len() && b[i] == b'~' {
        i += 1;
        let s = i;
        while i < b.len() && (b[i].is_ascii_digit() || (b'a'..=b'f').contains(&b[i])) {
            i += 1;
        }
        if i == s {
            return false;
        }
    }
    if i + 1 < b.len() && b[i] == b'-' && b[i + 1] == b'r' {
        i += 2;
        if !digits(&mut i) {
            return false;
        }
    }
    i == b.len()
}

/// Whether dpkg accepts a version without error: a numeric epoch if any, an upstream
/// part that starts with a digit, and only the characters dpkg allows.
pub fn dpkg_valid(v: &str) -> bool {
    // dpkg skips blanks around a version.
    let v = v.trim();
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) => (Some(e), r),
        None => (None, v),
    };
    if epoch.is_some_and(|e| e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    let (upstream, revision) = match rest.rsplit_once('-') {
        Some((u, r)) => (u, Some(r)),
        None => (rest, None),
    };
    let ok = |c: u8| c.is_ascii_alphanumeric() || b".+~-:".contains(&c);
    upstream.bytes().next().is_some_and(|c| c.is_ascii_digit())
        && upstream.bytes().all(ok)
        && revision.is_none_or(|r| {
            !r.is_empty()
                && r.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b".+~".contains(&c))
        })
}

/// Whether a version of the ecosystem is well formed. rpm accepts any non-empty string
/// without whitespace.
pub fn valid(kind: PackageKind, v: &str) -> bool {
    match kind {
        PackageKind::Deb => dpkg_valid(v),
        PackageKind::Apk => apk_valid(v),
        PackageKind::Rpm => !v.is_empty() && !v.contains(char::is_whitespace),
    }
}

/// apk-tools' version comparison (src/version.c).
pub fn apk_compare(a: &str, b: &str) -> Ordering {
    let (mut sa, mut sb) = (a.as_bytes(), b.as_bytes());
    let (mut at, mut bt) = (Tok::Digit, Tok::Digit);
    let (mut av, mut bv) = (Val::Num(0), Val::Num(0));
    while at == bt && at != Tok::End && at != Tok::Invalid && val_cmp(av, bv) == Ordering::Equal {
        av = get_token(&mut at, &mut sa);
        bv = get_token(&mut bt, &mut sb);
    }
    match val_cmp(av, bv) {
        Ordering::Equal => {}
        o => return o,
    }
    if at == bt {
        return Ordering::Equal;
    }
    // Equal so far: the longer version is newer, unless what follows is a pre-release.
    if at == Tok::Suffix && matches!(get_token(&mut at, &mut sa), Val::Num(n) if n < 0) {
        return Ordering::Less;
    }
    if bt == Tok::Suffix && matches!(get_token(&mut bt, &mut sb), Val::Num(n) if n < 0) {
        return Ordering::Greater;
    }
    bt.cmp(&at)
}
