// A CMake user's program using the optional SQLite part: <peergraph/sqlite_record_store.hpp> linked with
// peergraph::sqlite. It opens a store in a fresh temporary directory and writes to it, which calls into libsqlite3,
// so linking and running it proves that the target brings SQLite in.
#include <peergraph/sqlite_record_store.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace {

bool use_store(const std::filesystem::path& file)
{
  auto store = peergraph::sqlite_record_store::make(file);
  if (!store)
    return false;
  auto contents =
      (*store)->open(peergraph::graph_id::make("consumer-cmake").value(), peergraph::peer_id::make("consumer").value());
  if (!contents) {
    std::fprintf(stderr, "consumer_sqlite: open: %s\n", contents.error().message().c_str());
    return false;
  }
  const auto marked = (*store)->mark_synchronized();
  std::printf("consumer_sqlite: a new store holds %zu records; marked synchronized: %s\n", contents->records.size(),
              marked ? "yes" : marked.error().message().c_str());
  (*store)->close();
  return contents->records.empty() && !contents->synchronized && marked;
}

} // namespace

int main()
{
  std::string directory = (std::filesystem::temp_directory_path() / "peergraph-consumer-XXXXXX").string();
  if (mkdtemp(directory.data()) == nullptr) {
    std::perror("consumer_sqlite: mkdtemp");
    return 1;
  }
  const bool ok = use_store(std::filesystem::path(directory) / "records.db");
  std::error_code ignored;
  std::filesystem::remove_all(directory, ignored);
  return ok ? 0 : 1;
}
