// What squeeze may write and replace. Every command that writes (quantize, synth: a directory;
// calibrate: a file) checks its output here before any work, and again when it moves the finished
// output into place:
//  - an output may not be, contain or lie inside any input of the command (the model directory, a
//    calibration or data file): replacing it would destroy what is being read;
//  - an existing output is replaced only with --force, and only when squeeze made it: a directory
//    holding squeeze's marker file (kOutputMarker, written into every output directory) or a
//    calibration file squeeze wrote. Anything else is never deleted or overwritten; an empty
//    directory is used as it is;
//  - a symbolic link as the output is refused (what it points to is not squeeze's to replace);
//  - "-o DIR/" means DIR.
// Temporaries: an output directory is built as "<out>.tmp.<pid>" with the marker in it (a killed run
// leaves it behind; the next run of any squeeze command writing next to it removes it when that pid is
// gone); an output file is written unnamed (O_TMPFILE) and linked in only when complete, so a crash
// leaves nothing.
#pragma once
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace sq {

inline constexpr const char* kOutputMarker = ".squeeze";

struct OutputPolicy {
  std::vector<std::filesystem::path> inputs;  // what the command reads (files or directories)
  bool force = false;                          // replace an earlier squeeze output
  std::string command;                         // recorded in the marker ("quantize", "synth", ...)
};

// The output path as given on the command line, with trailing separators dropped. Throws on an empty
// path or one with no name ("/", "..").
std::filesystem::path output_path(std::string_view arg);

// Throws sq::Error (one line, naming the path) when `target` may not be written under `policy`.
void check_output_directory(const std::filesystem::path& target, const OutputPolicy& policy);
void check_output_file(const std::filesystem::path& target, const OutputPolicy& policy);

// Made by squeeze: a directory with the marker (or, from versions before the marker, a config.json
// that squeeze's quantize or synth wrote); a safetensors file whose metadata squeeze's calibrate wrote.
bool is_squeeze_directory(const std::filesystem::path& dir);
bool is_squeeze_file(const std::filesystem::path& file);

// Removes "<target>.tmp.<pid>" and "<target>.old.<pid>" directories beside target that hold the marker
// and whose process no longer runs. Returns how many were removed.
int remove_stale_temporaries(const std::filesystem::path& target);

}  // namespace sq
