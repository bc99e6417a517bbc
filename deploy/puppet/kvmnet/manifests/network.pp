# One network file, validated by the agent before it replaces the old one.
define kvmnet::network (
  String $content,
  Enum['toml', 'yaml'] $format = 'toml',
) {
  file { "/etc/kvmnet/networks.d/${title}.${format}":
    ensure       => file,
    mode         => '0644',
    content      => $content,
    validate_cmd => "/usr/local/bin/kvmnet-agent validate --format ${format} %",
    notify       => Service['kvmnet-agent'],
  }
}
