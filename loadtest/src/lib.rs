//! Client-side building blocks shared by the load tester and the chat demo:
//! REST helpers and a WebSocket client speaking the Fechatter protocol.

pub mod client;
