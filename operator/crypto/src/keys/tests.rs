use super::*;

fn kek(id: &str, byte: u8) -> Kek {
    Kek::from_bytes(id, [byte; KEY_LEN]).expect("valid kek")
}

#[test]
fn wrap_round_trip_compact_and_json() {
    let kek = kek("kek-2025-01", 7);
    let key = DataKey::generate().expect("rng");
    let wrapped = kek.wrap_key(&key, "acme/sbx-1").expect("wrap");
    assert_eq!(wrapped.kek_id(), "kek-2025-01");

    let compact = wrapped.to_string();
    assert!(compact.starts_with("serre-wk1:kek-2025-01:"), "{compact}");
    let parsed: WrappedKey = compact.parse().expect("parse compact");
    assert_eq!(parsed, wrapped);

    let json = serde_json::to_string(&wrapped).expect("json");
    assert!(json.contains("\"kekId\":\"kek-2025-01\""), "{json}");
    let from_json: WrappedKey = serde_json::from_str(&json).expect("parse json");
    assert_eq!(from_json, wrapped);

    let fp = wrapped.fingerprint();
    assert!(fp.starts_with("wk-") && fp.len() == 19, "{fp}");
    assert_eq!(parsed.fingerprint(), fp);
    assert_ne!(
        kek.wrap_key(&key, "acme/sbx-1")
            .expect("wrap")
            .fingerprint(),
        fp
    );

    let back = kek.unwrap_key(&parsed, "acme/sbx-1").expect("unwrap");
    assert_eq!(back.expose(), key.expose());
}

#[test]
fn wrong_kek_same_id_fails() {
    let key = DataKey::generate().expect("rng");
    let wrapped = kek("k1", 1).wrap_key(&key, "ctx").expect("wrap");
    let err = kek("k1", 2).unwrap_key(&wrapped, "ctx").unwrap_err();
    assert!(matches!(err, CryptoError::Unwrap), "{err}");
}

#[test]
fn wrong_kek_id_fails() {
    let key = DataKey::generate().expect("rng");
    let wrapped = kek("k1", 1).wrap_key(&key, "ctx").expect("wrap");
    let err = kek("k2", 1).unwrap_key(&wrapped, "ctx").unwrap_err();
    assert!(
        matches!(err, CryptoError::UnknownKek(ref id) if id == "k1"),
        "{err}"
    );
    // Relabelling the blob with the other id does not help: the id is bound.
    let relabelled: WrappedKey = wrapped
        .to_string()
        .replacen(":k1:", ":k2:", 1)
        .parse()
        .expect("parse");
    let err = kek("k2", 1).unwrap_key(&relabelled, "ctx").unwrap_err();
    assert!(matches!(err, CryptoError::Unwrap), "{err}");
}

#[test]
fn wrong_context_fails() {
    let kek = kek("k1", 1);
    let key = DataKey::generate().expect("rng");
    let wrapped = kek.wrap_key(&key, "acme/sbx-1").expect("wrap");
    for ctx in ["acme/sbx-2", "", "acme/sbx-1 "] {
        let err = kek.unwrap_key(&wrapped, ctx).unwrap_err();
        assert!(matches!(err, CryptoError::Unwrap), "{ctx:?}: {err}");
    }
}

#[test]
fn every_tampered_byte_fails() {
    let kek = kek("k1", 1);
    let key = DataKey::generate().expect("rng");
    let wrapped = kek.wrap_key(&key, "ctx").expect("wrap");
    for i in 0..NONCE_LEN {
        let mut w = wrapped.clone();
        w.nonce[i] ^= 0x01;
        assert!(matches!(
            kek.unwrap_key(&w, "ctx"),
            Err(CryptoError::Unwrap)
        ));
    }
    for i in 0..WRAPPED_LEN {
        let mut w = wrapped.clone();
        w.ciphertext[i] ^= 0x80;
        assert!(matches!(
            kek.unwrap_key(&w, "ctx"),
            Err(CryptoError::Unwrap)
        ));
    }
}

#[test]
fn malformed_wrapped_keys_are_rejected() {
    let good = kek("k1", 1)
        .wrap_key(&DataKey::from_bytes([3; 32]), "c")
        .expect("wrap")
        .to_string();
    let bad = [
        String::new(),
        "serre-wk2:k1:AAAA:AAAA".into(),
        good.replacen("serre-wk1", "other", 1),
        format!("{good}:extra"),
        good.replacen(":k1:", "::", 1),
        good[..good.len() - 4].to_string(),
    ];
    for s in bad {
        assert!(
            matches!(
                s.parse::<WrappedKey>(),
                Err(CryptoError::InvalidWrappedKey(_))
            ),
            "{s:?}"
        );
    }
    let json = r#"{"version":2,"kekId":"k1","nonce":"","ciphertext":""}"#;
    assert!(serde_json::from_str::<WrappedKey>(json).is_err());
}

#[test]
fn ring_rotates() {
    let old = kek("old", 1);
    let key = DataKey::generate().expect("rng");
    let wrapped_old = old.wrap_key(&key, "ctx").expect("wrap");
    let ring = KekRing::new(kek("new", 2), vec![old]).expect("ring");
    assert_eq!(ring.key_id(), "new");
    let rewrapped = ring.rewrap(&wrapped_old, "ctx").expect("rewrap");
    assert_eq!(rewrapped.kek_id(), "new");
    for w in [&wrapped_old, &rewrapped] {
        assert_eq!(
            ring.unwrap_key(w, "ctx").expect("unwrap").expose(),
            key.expose()
        );
    }
    let lone = KekRing::new(kek("new", 2), vec![]).expect("ring");
    assert!(matches!(
        lone.unwrap_key(&wrapped_old, "ctx"),
        Err(CryptoError::UnknownKek(_))
    ));
    assert!(KekRing::new(kek("a", 1), vec![kek("a", 2)]).is_err());
}

#[test]
fn loading_and_redaction() {
    let b64 = B64.encode([9u8; 32]);
    let kek = Kek::from_base64("k1", &format!("{b64}\n")).expect("base64 kek");
    assert!(!format!("{kek:?}").contains(&b64));
    assert!(Kek::from_base64("k1", &B64.encode([9u8; 31])).is_err());
    assert!(Kek::from_base64("k1", "not base64!").is_err());
    assert!(Kek::from_bytes("bad:id", [0; 32]).is_err());
    assert!(Kek::from_bytes("", [0; 32]).is_err());

    let key = DataKey::from_bytes([0xAB; 32]);
    let dbg = format!("{key:?}");
    assert_eq!(dbg, "DataKey(<redacted>)");
    assert_eq!(*key.sse_c_key_base64(), B64.encode([0xAB; 32]));
    assert_eq!(
        B64.decode(key.sse_c_key_base64().as_str())
            .expect("b64")
            .len(),
        32
    );
}
