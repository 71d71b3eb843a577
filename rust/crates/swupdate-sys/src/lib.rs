//! Raw bindings to libswupdate's client IPC (`network_ipc.h`, `progress_ipc.h`). Use the safe
//! wrapper in `swupdate-client`; this crate only exposes what bindgen generated.
#![allow(non_upper_case_globals, non_camel_case_types, non_snake_case, dead_code, clippy::all)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
