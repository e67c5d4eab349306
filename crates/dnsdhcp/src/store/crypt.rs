//! age encryption of archives before they leave the process, and decryption on the way back.

use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::str::FromStr;

use super::error::StoreError;

/// The public keys archives are encrypted to: age X25519 (`age1...`) or SSH (`ssh-ed25519 ...`,
/// `ssh-rsa ...`) keys. Every one of them can decrypt alone.
#[derive(Clone, Debug, Default)]
pub struct Recipients {
    keys: Vec<String>,
}

impl Recipients {
    /// Parses each recipient (checked now, so a typo fails before any backup runs). A value
    /// naming a readable file is read as a recipients file: one key per line, `#` comments.
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<Recipients, StoreError> {
        let mut keys = Vec::new();
        for v in values {
            let v = v.as_ref().trim();
            if Path::new(v).is_file() {
                let text = std::fs::read_to_string(v).map_err(StoreError::io(v))?;
                keys.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_owned),
                );
            } else {
                keys.push(v.to_owned());
            }
        }
        for k in &keys {
            recipient(k)?;
        }
        Ok(Recipients { keys })
    }

    /// True when no recipient was given: archives are uploaded as they are.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The recipients as given (public keys), recorded in each backup's entry.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// Wraps `out` so that everything written to it is encrypted to every recipient; the
    /// returned writer must be finished with [`age::stream::StreamWriter::finish`].
    pub fn encrypt<W: Write>(&self, out: W) -> Result<age::stream::StreamWriter<W>, StoreError> {
        let parsed: Vec<Box<dyn age::Recipient + Send>> = self
            .keys
            .iter()
            .map(|k| recipient(k))
            .collect::<Result<_, _>>()?;
        let encryptor = age::Encryptor::with_recipients(
            parsed.iter().map(|r| r.as_ref() as &dyn age::Recipient),
        )
        .map_err(|e| StoreError::crypto("encrypting", e))?;
        encryptor
            .wrap_output(out)
            .map_err(|e| StoreError::crypto("encrypting", e))
    }
}

fn recipient(key: &str) -> Result<Box<dyn age::Recipient + Send>, StoreError> {
    if key.starts_with("age1") {
        return age::x25519::Recipient::from_str(key)
            .map(|r| Box::new(r) as _)
            .map_err(|e| StoreError::crypto(format!("recipient {key:?}"), e));
    }
    if key.starts_with("ssh-") {
        return age::ssh::Recipient::from_str(key)
            .map(|r| Box::new(r) as _)
            .map_err(|e| StoreError::crypto(format!("recipient {key:?}"), format!("{e:?}")));
    }
    Err(StoreError::crypto(
        format!("recipient {key:?}"),
        "not an age (age1...) or SSH (ssh-ed25519/ssh-rsa) public key, nor a readable file",
    ))
}

/// Private keys that decrypt archives: age identity files (`AGE-SECRET-KEY-1...` lines) and
/// unencrypted SSH private keys.
pub struct Identities {
    keys: Vec<Box<dyn age::Identity + Send + Sync>>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identities({} keys)", self.keys.len())
    }
}

impl Identities {
    /// Reads every identity in `files`.
    pub fn read(files: &[impl AsRef<Path>]) -> Result<Identities, StoreError> {
        let mut keys: Vec<Box<dyn age::Identity + Send + Sync>> = Vec::new();
        for f in files {
            let f = f.as_ref();
            let text = std::fs::read(f).map_err(StoreError::io(f))?;
            let context = || format!("identity file {}", f.display());
            if text.starts_with(b"-----BEGIN") {
                let id = age::ssh::Identity::from_buffer(&text[..], Some(f.display().to_string()))
                    .map_err(|e| StoreError::crypto(context(), e))?;
                match id {
                    age::ssh::Identity::Unencrypted(_) => keys.push(Box::new(id)),
                    age::ssh::Identity::Encrypted(_) => {
                        return Err(StoreError::crypto(
                            context(),
                            "passphrase-protected SSH keys are not supported",
                        ));
                    }
                    age::ssh::Identity::Unsupported(k) => {
                        return Err(StoreError::crypto(context(), format!("{k:?}")));
                    }
                }
            } else {
                let file = age::IdentityFile::from_buffer(&text[..])
                    .map_err(|e| StoreError::crypto(context(), e))?;
                keys.extend(
                    file.into_identities()
                        .map_err(|e| StoreError::crypto(context(), e))?,
                );
            }
        }
        Ok(Identities { keys })
    }

    /// True when no identity was given.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// A reader of the plain text of the age file `input`.
    pub fn decrypt<R: Read>(&self, input: R) -> Result<impl Read, StoreError> {
        let d = age::Decryptor::new(BufReader::new(input))
            .map_err(|e| StoreError::crypto("decrypting", e))?;
        d.decrypt(self.keys.iter().map(|k| k.as_ref() as &dyn age::Identity))
            .map_err(|e| StoreError::crypto("decrypting", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    #[test]
    fn round_trip_to_two_recipients_each_decrypts_alone() {
        let (a, b) = (
            age::x25519::Identity::generate(),
            age::x25519::Identity::generate(),
        );
        let r = Recipients::parse(&[a.to_public().to_string(), b.to_public().to_string()]).unwrap();
        let mut w = r.encrypt(Vec::new()).unwrap();
        w.write_all(b"zone data").unwrap();
        let ciphertext = w.finish().unwrap();
        assert!(!ciphertext.windows(4).any(|x| x == b"zone"));
        let dir = tempfile::tempdir().unwrap();
        for (i, id) in [a, b].iter().enumerate() {
            let f = dir.path().join(format!("id{i}"));
            std::fs::write(&f, id.to_string().expose_secret()).unwrap();
            let ids = Identities::read(&[&f]).unwrap();
            let mut plain = Vec::new();
            ids.decrypt(&ciphertext[..])
                .unwrap()
                .read_to_end(&mut plain)
                .unwrap();
            assert_eq!(plain, b"zone data");
        }
        let other = dir.path().join("other");
        let c = age::x25519::Identity::generate();
        std::fs::write(&other, c.to_string().expose_secret()).unwrap();
        let err = Identities::read(&[&other])
            .unwrap()
            .decrypt(&ciphertext[..])
            .err()
            .unwrap();
        assert!(err.to_string().contains("decrypting"), "{err}");
    }

    #[test]
    fn bad_recipients_are_refused_up_front() {
        let e = Recipients::parse(&["age1nope"]).unwrap_err().to_string();
        assert!(e.contains("age1nope"), "{e}");
        let e = Recipients::parse(&["hello"]).unwrap_err().to_string();
        assert!(e.contains("not an age"), "{e}");
    }
}
