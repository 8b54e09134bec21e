//! Prints every headline figure of aemp as `name value unit`, each beside a
//! baseline measured in the same run.
//!
//! ```text
//! cargo run --release --example figures            # full run
//! cargo run --release --example figures -- --quick # under 30 s
//! ```

/// One measured figure.
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
}

impl Figure {
    pub fn new(name: &str, value: f64, unit: &'static str) -> Self {
        Figure {
            name: name.to_string(),
            value,
            unit,
        }
    }
}

fn print(figures: &[Figure]) {
    for f in figures {
        println!("{} {:.3} {}", f.name, f.value, f.unit);
    }
}

mod rpc;

fn main() {
    // Worker processes of the RPC figures are this program re-executed.
    rpc::setup_worker();
    let quick = std::env::args().any(|a| a == "--quick");
    let mut figures = Vec::new();
    figures.extend(rpc::figures(quick));
    print(&figures);
}
