# private-apt.sh, sourced by the installers: an apt configuration of our own that knows only one
# Debian suite. Nothing it does reaches /etc/apt or /var/lib/dpkg.
#
#   private_apt_init <state dir> <suite> <mirror>   sets the array apt_opts and reads the index
#   apt-get "${apt_opts[@]}" download <package>...   then fetches packages of that suite

private_apt_init() {
  local state=$1 suite=$2 mirror=$3
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  mkdir -p "$state"/{lists/partial,archives/partial,parts,prefs}
  echo "deb [signed-by=$keyring] $mirror $suite main" >"$state/sources.list"
  : >"$state/status"
  apt_opts=(
    -o Dir::Etc::sourcelist="$state/sources.list" -o Dir::Etc::sourceparts="$state/parts"
    -o Dir::Etc::preferences="$state/prefs/none" -o Dir::Etc::preferencesparts="$state/prefs"
    -o Dir::State::lists="$state/lists" -o Dir::State::status="$state/status"
    -o Dir::Cache="$state" -o Dir::Cache::archives="$state/archives"
    -o APT::Architecture=amd64 -o Acquire::Languages=none -o Debug::NoLocking=1
    -o APT::Sandbox::User=root -qq
  )
  apt-get "${apt_opts[@]}" update
}
