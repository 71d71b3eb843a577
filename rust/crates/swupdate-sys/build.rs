//! Generates the bindings from the installed headers (libswupdate-dev on Debian, the swupdate
//! recipe's sysroot in Yocto: point `SWUPDATE_INCLUDE_DIR`/`SWUPDATE_LIB_DIR` there).

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-env-changed=SWUPDATE_INCLUDE_DIR");
    println!("cargo:rerun-if-env-changed=SWUPDATE_LIB_DIR");
    if let Ok(dir) = std::env::var("SWUPDATE_LIB_DIR") {
        println!("cargo:rustc-link-search=native={dir}");
    }
    println!("cargo:rustc-link-lib=swupdate");
    let mut b = bindgen::Builder::default()
        .header("wrapper.h")
        .allowlist_function("ipc_.*")
        .allowlist_function("swupdate_.*")
        .allowlist_function("progress_ipc_.*")
        .allowlist_function("get_ctrl_socket|get_prog_socket")
        .allowlist_type("ipc_message|progress_msg|swupdate_request|RECOVERY_STATUS|sourcetype|msgtype|run_type")
        .allowlist_var("IPC_MAGIC|SWUPDATE_API_VERSION|PRINFOSIZE")
        .rustified_enum("RECOVERY_STATUS|sourcetype|run_type")
        .derive_default(true)
        .layout_tests(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    if let Ok(dir) = std::env::var("SWUPDATE_INCLUDE_DIR") {
        b = b.clang_arg(format!("-I{dir}"));
    }
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    b.generate()
        .expect("bindgen over network_ipc.h/progress_ipc.h (apt install libswupdate-dev clang)")
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings");
}
