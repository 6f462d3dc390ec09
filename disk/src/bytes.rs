//! Integers at an offset of untrusted bytes: the one way every parser in the workspace
//! reads them. Too short a slice is a [`Short`] error naming where and how much, never a
//! panic and never a silent zero; each parser turns it into its own "corrupt" error.

/// A read past the end of the bytes at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{want} bytes at offset {at} run past the {have} bytes read")]
pub struct Short {
    pub at: usize,
    pub want: usize,
    pub have: usize,
}

fn take<const N: usize>(b: &[u8], at: usize) -> Result<[u8; N], Short> {
    let short = Short {
        at,
        want: N,
        have: b.len(),
    };
    let end = at.checked_add(N).ok_or(short)?;
    b.get(at..end)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or(short)
}

pub fn be_u16(b: &[u8], at: usize) -> Result<u16, Short> {
    take(b, at).map(u16::from_be_bytes)
}
pub fn be_u32(b: &[u8], at: usize) -> Result<u32, Short> {
    take(b, at).map(u32::from_be_bytes)
}
pub fn be_u64(b: &[u8], at: usize) -> Result<u64, Short> {
    take(b, at).map(u64::from_be_bytes)
}
pub fn le_u16(b: &[u8], at: usize) -> Result<u16, Short> {
    take(b, at).map(u16::from_le_bytes)
}
pub fn le_u32(b: &[u8], at: usize) -> Result<u32, Short> {
    take(b, at).map(u32::from_le_bytes)
}
pub fn le_u64(b: &[u8], at: usize) -> Result<u64, Short> {
    take(b, at).map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_at_offsets_and_refuses_past_the_end() {
        let b = [0x12, 0x34, 0x56, 0x78, 0x9a];
        assert_eq!(be_u16(&b, 0), Ok(0x1234));
        assert_eq!(le_u16(&b, 0), Ok(0x3412));
        assert_eq!(be_u32(&b, 1), Ok(0x3456_789a));
        assert_eq!(le_u32(&b, 1), Ok(0x9a78_5634));
        assert_eq!(
            be_u32(&b, 2),
            Err(Short {
                at: 2,
                want: 4,
                have: 5
            })
        );
        assert!(le_u64(&b, 0).is_err());
        assert!(be_u64(&b, usize::MAX).is_err(), "an offset that overflows");
    }
}
