//! Authoritative answers from the lab's zones (RFC 1034 §4.3.2, RFC 2308).
//!
//! The zones come from RFC 1035 master files, parsed by hickory-proto. The
//! answer algorithm is the textbook one, for authoritative data only (this
//! server never recurses): find the zone that holds the name, answer the
//! records of the asked type, follow a CNAME inside the zones we serve, and
//! tell a name that does not exist (NXDOMAIN) from a name that has no record
//! of that type (NODATA, NOERROR with no answer); both carry the zone's SOA
//! in the authority section so resolvers can cache the negative answer.

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordSet, RecordType, RrKey};
use hickory_proto::serialize::txt::Parser;
use std::collections::BTreeMap;
use std::path::Path;

/// One zone we are authoritative for.
pub struct Zone {
    pub origin: Name,
    sets: BTreeMap<RrKey, RecordSet>,
}

impl Zone {
    /// Parse a master file; errors name the file.
    pub fn load(path: &Path) -> Result<Zone, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Zone::parse(&text, Some(path))
    }

    pub fn parse(text: &str, path: Option<&Path>) -> Result<Zone, String> {
        let name = path.map_or("zone".to_string(), |p| p.display().to_string());
        let (origin, sets) = Parser::new(text, path.map(Path::to_path_buf), None)
            .parse()
            .map_err(|e| format!("{name}: {e}"))?;
        let zone = Zone { origin, sets };
        if zone.soa().is_none() {
            return Err(format!(
                "{name}: zone {} has no SOA record at its origin",
                zone.origin
            ));
        }
        Ok(zone)
    }

    fn set(&self, name: &Name, t: RecordType) -> Option<&RecordSet> {
        self.sets
            .get(&RrKey::new(LowerName::new(name), t))
            .filter(|s| !s.is_empty())
    }

    fn soa(&self) -> Option<&Record> {
        self.set(&self.origin, RecordType::SOA)?.record()
    }

    /// Whether a name exists: it owns records, or names below it do (an
    /// "empty non-terminal" exists too, RFC 8020).
    fn has_name(&self, name: &Name) -> bool {
        self.sets
            .keys()
            .any(|k| name.zone_of(&Name::from(k.name())))
    }

    /// The SOA for a negative answer, its TTL capped by the SOA minimum.
    fn negative_soa(&self) -> Option<Record> {
        let soa = self.soa()?;
        let mut r = soa.clone();
        if let RData::SOA(s) = &soa.data {
            r.ttl = r.ttl.min(s.minimum);
        }
        Some(r)
    }

    pub fn record_count(&self) -> usize {
        self.sets.values().map(RecordSet::records_count).sum()
    }
}

/// Every zone the server answers for.
pub struct Zones(pub Vec<Zone>);

/// Longest CNAME chain followed before giving up (a loop in the data).
const MAX_CHAIN: usize = 8;

impl Zones {
    /// The zone holding `name`: the one with the longest matching origin.
    fn find(&self, name: &Name) -> Option<&Zone> {
        self.0
            .iter()
            .filter(|z| z.origin.zone_of(name))
            .max_by_key(|z| z.origin.num_labels())
    }

    /// The response to one request message.
    pub fn answer(&self, req: &Message) -> Message {
        let md = &req.metadata;
        let mut resp = Message::response(md.id, md.op_code);
        resp.metadata.recursion_desired = md.recursion_desired;
        resp.add_queries(req.queries.iter().cloned());
        if md.op_code != OpCode::Query {
            resp.metadata.response_code = ResponseCode::NotImp;
            return resp;
        }
        let [q] = &req.queries[..] else {
            resp.metadata.response_code = ResponseCode::FormErr;
            return resp;
        };
        if q.query_class != DNSClass::IN {
            resp.metadata.response_code = ResponseCode::Refused;
            return resp;
        }
        let Some(mut zone) = self.find(&q.name) else {
            // Not ours, and we do not recurse.
            resp.metadata.response_code = ResponseCode::Refused;
            return resp;
        };
        resp.metadata.authoritative = true;
        let qtype = q.query_type;
        let mut name = q.name.clone();
        for _ in 0..MAX_CHAIN {
            if qtype == RecordType::ANY {
                let all: Vec<Record> = zone
                    .sets
                    .iter()
                    .filter(|(k, _)| Name::from(k.name()) == name)
                    .flat_map(|(_, s)| s.records_without_rrsigs().cloned())
                    .collect();
                if all.is_empty() {
                    self.negative(&mut resp, zone, &name);
                }
                resp.add_answers(all);
                break;
            }
            if let Some(set) = zone.set(&name, qtype) {
                resp.add_answers(set.records_without_rrsigs().cloned());
                break;
            }
            if let Some(c) = zone.set(&name, RecordType::CNAME) {
                resp.add_answers(c.records_without_rrsigs().cloned());
                let Some(RData::CNAME(target)) = c.record().map(|r| &r.data) else {
                    break;
                };
                name = target.0.clone();
                match self.find(&name) {
                    Some(z) => zone = z,
                    // Pointing outside our zones: the resolver follows it.
                    None => break,
                }
                continue;
            }
            self.negative(&mut resp, zone, &name);
            break;
        }
        self.additional(&mut resp);
        resp
    }

    fn negative(&self, resp: &mut Message, zone: &Zone, name: &Name) {
        if !zone.has_name(name) {
            resp.metadata.response_code = ResponseCode::NXDomain;
        }
        if let Some(soa) = zone.negative_soa() {
            resp.add_authority(soa);
        }
    }

    /// Addresses of the hosts named by MX and NS answers, where we hold them
    /// (RFC 1035 §3.3.9: saves the client another query).
    fn additional(&self, resp: &mut Message) {
        let targets: Vec<Name> = resp
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::MX(mx) => Some(mx.exchange.clone()),
                RData::NS(ns) => Some(ns.0.clone()),
                _ => None,
            })
            .collect();
        for t in targets {
            let Some(z) = self.find(&t) else { continue };
            for ty in [RecordType::A, RecordType::AAAA] {
                if let Some(set) = z.set(&t, ty) {
                    resp.add_additionals(set.records_without_rrsigs().cloned());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, Query};

    const ZONE: &str = "$ORIGIN crepes.lab.\n$TTL 60\n\
        @ IN SOA dns.crepes.lab. hostmaster.crepes.lab. 1 3600 600 86400 30\n\
        @ IN NS dns\n@ IN MX 10 mail\n\
        dns IN A 10.0.0.2\nmail IN A 10.0.0.3\nwww IN CNAME mail\n\
        loop IN CNAME loop\nx.deep IN TXT \"hi\"\n";

    fn ask(zones: &Zones, name: &str, t: RecordType) -> Message {
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        zones.answer(&m)
    }

    #[test]
    fn answers_like_an_authoritative_server() {
        let z = Zones(vec![Zone::parse(ZONE, None).unwrap()]);
        let r = ask(&z, "crepes.lab.", RecordType::MX);
        assert!(r.metadata.authoritative);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.additionals.len(), 1, "the MX host's address rides along");
        // Case does not matter.
        assert_eq!(ask(&z, "MAIL.Crepes.LAB.", RecordType::A).answers.len(), 1);
        // CNAME followed inside the zone.
        let r = ask(&z, "www.crepes.lab.", RecordType::A);
        assert_eq!(
            r.answers
                .iter()
                .map(|a| a.record_type())
                .collect::<Vec<_>>(),
            [RecordType::CNAME, RecordType::A]
        );
        // NODATA: the name exists, not the type.
        let r = ask(&z, "mail.crepes.lab.", RecordType::MX);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.answers.is_empty());
        assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
        assert_eq!(r.authorities[0].ttl, 30, "negative TTL is the SOA minimum");
        // An empty non-terminal exists.
        let r = ask(&z, "deep.crepes.lab.", RecordType::A);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        // NXDOMAIN.
        let r = ask(&z, "nope.crepes.lab.", RecordType::A);
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        // Not our zone.
        let r = ask(&z, "example.com.", RecordType::A);
        assert_eq!(r.metadata.response_code, ResponseCode::Refused);
        assert!(!r.metadata.authoritative);
        // A CNAME loop ends.
        assert!(ask(&z, "loop.crepes.lab.", RecordType::A).answers.len() <= MAX_CHAIN);
    }

    #[test]
    fn a_zone_without_soa_is_refused_with_its_file_name() {
        let e = Zone::parse(
            "$ORIGIN a.lab.\nwww 60 IN A 10.0.0.1\n",
            Some(Path::new("a.zone")),
        )
        .err()
        .unwrap();
        assert!(e.contains("a.zone") && e.contains("SOA"), "{e}");
    }
}
