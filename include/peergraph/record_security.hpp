//
// peergraph/record_security.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Record security (the record half of PEER_SECURITY_INTERFACE: pfnSecureRecord and pfnValidateRecord): a graph asks
// it to fill in the security data of every version its node makes, and to judge every version that arrives from a
// neighbor or from the node's store before it is kept. Without it, a node trusts the creator a version names; with a
// signature scheme behind it, nobody can add, update or delete a record in another peer's name.
//
#pragma once

#include <peergraph/detail/graph/record_codec.hpp>
#include <peergraph/error.hpp>
#include <peergraph/expected.hpp>
#include <peergraph/record.hpp>

#include <cstddef>
#include <vector>

namespace peergraph {

/// What a graph asks about the records it makes and receives (graph_properties::record_security). Called on the
/// graph's executor, one call at a time per graph; an implementation shared by several graphs must be thread-safe.
class record_security
{
public:
  virtual ~record_security() = default;

  /// Fills in `version.security_data` (e.g. a signature over record_signing_bytes(version)) for a version this node
  /// makes: added, updated or deleted. Every other field is final. An error fails the record operation with it.
  virtual expected<void, peer_error> secure(record& version) const = 0;

  /// Whether `version`, received from a neighbor or read from the store, is genuine. An error (invalid_record, or
  /// any other) refuses it: a neighbor that sent it loses its connection with that reason, a store that held it
  /// fails to open.
  virtual expected<void, peer_error> validate(const record& version) const = 0;
};

/// The bytes a signature over `version` covers: its type, then its record payload (docs/wire.md, "Record payload")
/// with the security data left out. Every field a node can change is in it, so a signature over it binds the
/// creator, the version, the times, the attributes and the data.
[[nodiscard]] inline expected<std::vector<std::byte>, peer_error> record_signing_bytes(const record& version)
{
  std::vector<std::byte> bytes(version.type.bytes().begin(), version.type.bytes().end());
  record unsigned_version = version;
  unsigned_version.security_data.clear();
  if (auto encoded = detail::encode_record_payload(unsigned_version, bytes); !encoded)
    return unexpected(encoded.error());
  return bytes;
}

} // namespace peergraph
