pub use opcua;
