//! The gateway tests' upstream as a program, for `bench/gateway.sh`:
//! `echo_upstream [ADDR]` (default 127.0.0.1:0) prints `listening on http://ADDR`.

// The tests use more of it than the program does.
#[allow(dead_code)]
#[path = "../tests/gateway/upstream.rs"]
mod upstream;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("listening on http://{}", listener.local_addr()?);
    upstream::serve(listener).await?;
    Ok(())
}
