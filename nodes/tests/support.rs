use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair};
use serde_json::Value;
use uuid::Uuid;
use veil_core::{ChainRuntime, Msg, Problem, TraceStep};
use veil_store::{
    Actor, Database, Limits, MasterKeySource, NewSecret, Owner, OwnerType, SecretType, SecretValue, Store,
    StoreConfig, TenantId, UserId,
};

pub(crate) struct Env {
    _dir: tempfile::TempDir,
    pub(crate) store: Store,
    pub(crate) admin: Actor,
}

impl Env {
    pub(crate) async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig {
            database: Database::Sqlite(dir.path().join("veil.db")),
            master_key: MasterKeySource::Generated(dir.path().join("master.key")),
            limits: Limits::default(),
        })
        .await
        .unwrap();
        let admin = Actor::tenant_admin(TenantId::new_random(), UserId::new_random(), "admin");
        Self { _dir: dir, store, admin }
    }

    pub(crate) async fn secret(&self, name: &str, value: &str) {
        let req = NewSecret {
            name: name.into(),
            kind: SecretType::Text,
            description: None,
            value: SecretValue::from(value),
            file_name: None,
        };
        self.store.create(&self.admin, req).await.unwrap();
    }

    /// Validates, saves (with references) and starts a chain, as the server does.
    pub(crate) async fn deploy(&self, chain: &Value) -> Result<ChainRuntime, Vec<Problem>> {
        self.deploy_with(&veil_nodes::registry(), chain).await
    }

    /// [`Env::deploy`] with a registry of the test's own (other limits).
    pub(crate) async fn deploy_with(
        &self,
        registry: &veil_core::Registry,
        chain: &Value,
    ) -> Result<ChainRuntime, Vec<Problem>> {
        let deployment = veil_core::deploy(registry, &self.store, &self.admin, chain)?;
        let id = Uuid::new_v4();
        let owner =
            Owner { kind: OwnerType::RuleChain, id, name: deployment.def.name.clone(), customer_id: None };
        let body = serde_json::to_value(&deployment.def).unwrap();
        self.store.save_owner(&self.admin, &owner, &body, &deployment.references).await.unwrap();
        Ok(ChainRuntime::new(id, self.admin.tenant_id, self.store.clone(), deployment))
    }
}

pub(crate) async fn run(runtime: &ChainRuntime, data: Value) -> Vec<TraceStep> {
    let msg = Msg::new("POST_TELEMETRY_REQUEST", "device-1", data).with_metadata("deviceName", "device-1");
    runtime.process(msg).await
}

/// A CA with a server certificate (localhost, 127.0.0.1) and a client certificate, generated
/// fresh for each test.
pub(crate) struct Pki {
    pub(crate) ca: String,
    pub(crate) server_cert: String,
    pub(crate) server_key: String,
    pub(crate) client_cert: String,
    pub(crate) client_key: String,
}

/// Parameters with their own common name (rcgen's default name is the same for every certificate,
/// which makes a leaf look self-issued).
fn params(names: &[&str], common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, common_name);
    params
}

pub(crate) fn new_pki() -> Pki {
    let mut ca_params = params(&[], "Veil test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = params(&["localhost", "127.0.0.1"], "localhost").signed_by(&server_key, &ca).unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = params(&[], "veil-client").signed_by(&client_key, &ca).unwrap();
    Pki {
        ca: ca.pem(),
        server_cert: server.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client.pem(),
        client_key: client_key.serialize_pem(),
    }
}

impl Env {
    pub(crate) async fn file_secret(&self, name: &str, pem: &str) {
        let req = NewSecret {
            name: name.into(),
            kind: SecretType::File,
            description: None,
            value: SecretValue::new(pem.as_bytes().to_vec()),
            file_name: Some(format!("{name}.pem")),
        };
        self.store.create(&self.admin, req).await.unwrap();
    }
}
