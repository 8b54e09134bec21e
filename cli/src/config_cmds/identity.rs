//! The node's identity and credentials: the node ID, the shared secret
//! and the TLS certificate (set, generate, remove), with the secret and
//! certificate generators.

use super::{del, one, set, Res};
use crate::cmd::{spec, Arity, Failure, Session, Spec};
use serde_json::Value;

/// The node ID, secret and certificate commands, in help order.
pub(super) fn commands() -> Vec<Spec> {
    vec![
        set(
            "setnodeid",
            "nodeid",
            "ID",
            "the node ID; %n is the host name, %u and a trailing / random text",
            "Set the node ID",
            node_id_value,
        ),
        del(
            "delnodeid",
            "nodeid",
            "Remove the node ID (inherit it again)",
        ),
        spec(
            "gensecret",
            None,
            Arity::Zero,
            "Set a new random secret (86 alphanumerics, 512 bits)",
            gensecret,
        ),
        set(
            "setsecret",
            "secret",
            "SECRET",
            "the shared secret",
            "Set the shared secret",
            secret_value,
        ),
        del(
            "delsecret",
            "secret",
            "Remove the secret (inherit it again)",
        ),
        spec(
            "gencert",
            None,
            Arity::Zero,
            "Set a new self-signed certificate and key (CN=AnyEvent::MP, 10 years)",
            gencert,
        )
        .long(
            "Stores the private key and the certificate as PEM under `cert`. Nodes that share \
                   the certificate trust each other over TLS (copy the file to every host).",
        ),
        spec(
            "setcert",
            Some("cert"),
            one(
                "FILE",
                "a PEM file with a private key and a certificate (and optional CA certificates)",
            ),
            "Set the certificate and key from a PEM file",
            setcert,
        ),
        del(
            "delcert",
            "cert",
            "Remove the certificate (inherit it again)",
        ),
    ]
}

fn gensecret(s: &mut Session, _: Vec<Value>) -> Res {
    let secret = gen_secret().map_err(|e| Failure::Failed(format!("gensecret: {e}")))?;
    s.section().insert("secret".into(), Value::String(secret));
    Ok(())
}

fn secret_value(cmd: &str, v: &Value) -> Result<Value, Failure> {
    match v {
        Value::String(s) if !s.is_empty() => Ok(Value::String(s.clone())),
        other => Err(Failure::Usage(format!(
            "{cmd}: the secret must be a non-empty string, not {other}"
        ))),
    }
}

fn gencert(s: &mut Session, _: Vec<Value>) -> Res {
    let pem = gen_cert().map_err(|e| Failure::Failed(format!("gencert: {e}")))?;
    s.section().insert("cert".into(), Value::String(pem));
    Ok(())
}

fn setcert(s: &mut Session, a: Vec<Value>) -> Res {
    let file = match &a[0] {
        Value::String(f) => f.clone(),
        other => {
            return Err(Failure::Usage(format!(
                "setcert: FILE must be a file name, not {other}"
            )))
        }
    };
    let pem = read_cert(&file).map_err(Failure::Failed)?;
    s.section().insert("cert".into(), Value::String(pem));
    Ok(())
}

fn node_id_value(cmd: &str, v: &Value) -> Result<Value, Failure> {
    match v {
        Value::String(id) => match aemp::NodeId::new(id) {
            Ok(_) => Ok(v.clone()),
            Err(e) => Err(Failure::Usage(format!("{cmd}: {e}"))),
        },
        other => Err(Failure::Usage(format!(
            "{cmd}: a node ID must be a string, not {other}"
        ))),
    }
}

/// 86 random alphanumerics: 512 bits, like the original's `alnumbits nonce 64`.
fn gen_secret() -> Result<String, String> {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(86);
    let mut buf = [0u8; 128];
    while out.len() < 86 {
        getrandom::fill(&mut buf).map_err(|e| format!("no random numbers: {e}"))?;
        // 248 = 4 * 62: taking bytes below it keeps every character equally likely.
        for &b in buf.iter().filter(|&&b| b < 248) {
            if out.len() < 86 {
                out.push(ALNUM[usize::from(b % 62)] as char);
            }
        }
    }
    Ok(out)
}

/// A self-signed CA certificate (CN=AnyEvent::MP, ten years, ECDSA P-256)
/// and its key, as PEM: the key first, like `openssl req -x509 -keyout F -out F`.
pub fn gen_cert() -> Result<String, String> {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, SerialNumber,
    };
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| format!("the clock is before 1970: {e}"))?
        .as_secs()
        / 86_400;
    let (y, m, d) = civil_from_days(days as i64 - 1);
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "AnyEvent::MP");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_before = rcgen::date_time_ymd(y, m, d);
    params.not_after = rcgen::date_time_ymd(y + 10, m, d.min(28));
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|e| format!("no random numbers: {e}"))?;
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let key = KeyPair::generate().map_err(|e| format!("cannot generate a key: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("cannot sign the certificate: {e}"))?;
    Ok(format!("{}{}", key.serialize_pem(), cert.pem()))
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic
/// Gregorian; Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i32, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m as u8, d as u8)
}

/// Reads a PEM file that must hold a private key and a certificate.
fn read_cert(file: &str) -> Result<String, String> {
    let text =
        std::fs::read_to_string(file).map_err(|e| format!("setcert: cannot read {file}: {e}"))?;
    let blocks =
        pem::parse_many(&text).map_err(|e| format!("setcert: {file} is not valid PEM: {e}"))?;
    let has = |pred: &dyn Fn(&str) -> bool| blocks.iter().any(|b| pred(b.tag()));
    if !has(&|t| t.ends_with("PRIVATE KEY")) {
        return Err(format!(
            "setcert: {file} holds no private key (expected a PEM block \"... PRIVATE KEY\")"
        ));
    }
    if !has(&|t| t == "CERTIFICATE") {
        return Err(format!(
            "setcert: {file} holds no certificate (expected a PEM block \"CERTIFICATE\")"
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_780), (2026, 11, 23));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn secrets_are_alphanumeric() {
        let s = gen_secret().unwrap();
        assert_eq!(s.len(), 86);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(s, gen_secret().unwrap());
    }
}
