//! `enosctl cloud`: each sub-device's cloud identity and whether its data reaches the cloud.

use enos_bus::SubDeviceStatus;

/// One line per device; a device that cannot upload says why on its line.
pub fn render(subs: &[SubDeviceStatus]) -> String {
    if subs.is_empty() {
        return "no sub-devices: give a device a product key in the web center's device editor (or a [[sub_device]] in \
                uplink.toml) to upload its data\n"
            .into();
    }
    let mut out = format!("{:<20} {:<14} {:<24} {:<11} {:<9}  reason\n", "DEVICE", "PRODUCT", "DEVICE KEY", "STATE", "UPLOADS");
    for s in subs {
        out += &format!(
            "{:<20} {:<14} {:<24} {:<11} {:<9}  {}\n",
            s.device,
            s.product_key,
            s.device_key.as_deref().unwrap_or("-"),
            s.state,
            if s.uploading { "yes" } else { "no" },
            s.reason.as_deref().unwrap_or("")
        );
    }
    out
}

/// The status line's summary: how many are logged in, how many cannot upload.
pub fn summary(subs: &[SubDeviceStatus]) -> String {
    let up = subs.iter().filter(|s| s.uploading).count();
    let not = subs.len() - up;
    let mut line = format!("{up} of {} uploading", subs.len());
    if not > 0 {
        line += &format!(", {not} not (see `enosctl cloud`)");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_that_cannot_upload_says_why() {
        let s = SubDeviceStatus {
            device: "inv01".into(),
            product_key: "pkI".into(),
            state: "refused".into(),
            reason: Some("registration refused by the cloud with code 1000: quota".into()),
            ..Default::default()
        };
        let out = render(std::slice::from_ref(&s));
        assert!(out.contains("inv01") && out.contains("refused") && out.contains("code 1000: quota") && out.contains(" no "), "{out}");
        assert_eq!(summary(&[s]), "0 of 1 uploading, 1 not (see `enosctl cloud`)");
        assert!(render(&[]).starts_with("no sub-devices"));
    }
}
