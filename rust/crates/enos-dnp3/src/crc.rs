//! CRC-16/DNP: polynomial 0x3D65, reflected, initial 0, final XOR 0xFFFF; sent low octet first.

const TABLE: [u16; 256] = table();

const fn table() -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u16;
        let mut b = 0;
        while b < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0xA6BC } else { c >> 1 };
            b += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

pub fn crc(data: &[u8]) -> u16 {
    let mut c = 0u16;
    for &b in data {
        c = (c >> 8) ^ TABLE[((c ^ u16::from(b)) & 0xff) as usize];
    }
    !c
}

#[cfg(test)]
mod tests {
    #[test]
    fn check_value_of_the_standard_string() {
        assert_eq!(super::crc(b"123456789"), 0xEA82);
    }
}
