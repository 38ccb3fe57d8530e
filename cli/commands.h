/* Sub-commands of the hgad tool. Each takes the arguments after "hgad"
 * (argv[0] is the sub-command's name), prints its own errors as one line on
 * stderr, and returns the process exit code. */
#ifndef HG_CLI_COMMANDS_H
#define HG_CLI_COMMANDS_H

int cmd_weights_info(int argc, char **argv);
int cmd_flow_run(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_classify(int argc, char **argv);     /* cli/cmd_backbone.c */
int cmd_backbone_run(int argc, char **argv); /* cli/cmd_backbone.c */
int cmd_audit(int argc, char **argv);
int cmd_zoo(int argc, char **argv);

#endif
