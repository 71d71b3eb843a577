//! A `.tar.gz` written by hand for the diagnostics bundle: ustar entries inside a gzip member
//! whose deflate stream uses stored blocks (a valid gzip any `tar xzf` reads; the bundle is
//! small text, so not compressing it costs little and needs no compression library).

/// Builds the archive from `(name, contents)` entries.
pub fn tar_gz(entries: &[(String, Vec<u8>)], mtime_s: u64) -> Vec<u8> {
    gzip_stored(&tar(entries, mtime_s), mtime_s)
}

fn octal(field: &mut [u8], v: u64) {
    let w = field.len() - 1;
    let s = format!("{:0w$o}", v);
    field[..w].copy_from_slice(&s.as_bytes()[s.len() - w..]);
    field[w] = 0;
}

pub fn tar(entries: &[(String, Vec<u8>)], mtime_s: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in entries {
        let mut h = [0u8; 512];
        let n = name.as_bytes();
        h[..n.len().min(100)].copy_from_slice(&n[..n.len().min(100)]);
        octal(&mut h[100..108], 0o644);
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], data.len() as u64);
        octal(&mut h[136..148], mtime_s);
        h[148..156].copy_from_slice(b"        ");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[265..269].copy_from_slice(b"root");
        h[297..301].copy_from_slice(b"root");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, t) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
        *t = c;
    }
    !data.iter().fold(!0u32, |c, &b| table[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8))
}

fn gzip_stored(data: &[u8], mtime_s: u64) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0];
    out.extend_from_slice(&(mtime_s as u32).to_le_bytes());
    out.extend_from_slice(&[0, 3]);
    let mut chunks = data.chunks(65_535).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(c) = chunks.next() {
        out.push(if chunks.peek().is_none() { 1 } else { 0 });
        let len = c.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(c);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_of_the_check_string() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn tar_reads_the_archive_back() {
        let dir = std::env::temp_dir().join(format!("enos-web-tar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let gz = tar_gz(&[("a/status.json".into(), b"{\"ok\":true}\n".to_vec()), ("big.bin".into(), big.clone())], 1_700_000_000);
        std::fs::write(dir.join("x.tar.gz"), &gz).unwrap();
        let st = std::process::Command::new("tar").arg("xzf").arg("x.tar.gz").current_dir(&dir).status();
        if let Ok(st) = st {
            assert!(st.success());
            assert_eq!(std::fs::read(dir.join("a/status.json")).unwrap(), b"{\"ok\":true}\n");
            assert_eq!(std::fs::read(dir.join("big.bin")).unwrap(), big);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
