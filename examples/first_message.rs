//! The tutorial's first message: a port with a `test` callback, one
//! message to it, and the value it carried.
//!
//! ```text
//! cargo run --example first_message
//! Ending with: 123
//! ```

use aemp::msg;

fn main() {
    env_logger::init();
    let (end_tx, end_rx) = std::sync::mpsc::channel();

    let port = aemp::port();
    aemp::rcv(&port, "test", move |data| {
        end_tx.send(data[0].clone()).unwrap();
    })
    .expect("the port is local");

    aemp::snd(&port, msg!["test", 123]);

    println!("Ending with: {}", end_rx.recv().unwrap());
}
