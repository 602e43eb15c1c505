# CMake toolchain file: a CMake project using peergraph, built for 64-bit Windows with Debian's MinGW-w64
# (g++-mingw-w64-x86-64-posix) and run under Wine, as the Meson cross file beside it does for peergraph itself:
#
#   cmake -S . -B build-windows -DCMAKE_TOOLCHAIN_FILE=<peergraph>/cross/x86_64-w64-mingw32.cmake \
#     -Dpeergraph_DIR=<prefix>/share/cmake/peergraph -Dpeergraph_ASIO_INCLUDE_DIR=<Asio's include directory>
#
# Libraries and headers are looked for under MinGW-w64's own root only, never in the build machine's /usr/include
# (Linux's): a header-only library shared with the build machine, such as Debian's Asio, is named by hand, as above
# (.ci/run uses cross/x86_64-w64-mingw32/include).
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(CMAKE_C_COMPILER x86_64-w64-mingw32-gcc-posix)
set(CMAKE_CXX_COMPILER x86_64-w64-mingw32-g++-posix)
set(CMAKE_RC_COMPILER x86_64-w64-mingw32-windres)
set(CMAKE_FIND_ROOT_PATH /usr/x86_64-w64-mingw32)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# Tests run under Wine.
set(CMAKE_CROSSCOMPILING_EMULATOR wine)
# As the Meson cross file: Windows 10's API, the MinGW runtime linked in (big objects come with peergraph::peergraph).
set(CMAKE_CXX_FLAGS_INIT "-D_WIN32_WINNT=0x0A00")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
